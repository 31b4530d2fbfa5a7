"""Field-bus clients, device-profile schema and the MQTT wire contract; knows nothing of edge or cloud."""
