"""PLC simulators: real Modbus TCP and OPC UA servers driven by device profiles and behaviour models.

    behaviour      MachineBehaviour: seeded states, counters, process signals, wear (no I/O)
    modbus_server  ModbusDeviceServer: one device on pymodbus's async TCP server
    opcua_server   OpcUaDeviceServer: one device on asyncua's server
    scenario       the scenario file schema (a whole plant) and load_scenario
    runner         SimulatedPlant, write_endpoints_file, run_scenario (``forgeline sim``)

Importing this package starts nothing and imports no field-bus library; import the module you
need.
"""
