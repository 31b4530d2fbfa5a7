"""Every cloud table in one import, for Alembic's metadata and for tests."""

from cloud.alarms.models import Alarm, AlarmEvent, AlarmLimit, AlarmRuleRow, AlarmShelf
from cloud.assets.models import Area, Line, Machine, Site
from cloud.db import Base
from cloud.ingest.models import DeadLetter, DeviceEvent, EdgeNode, IngestMessage
from cloud.integration.models import ErpDelivery, ErpDeliveryAttempt, ErpWebhook
from cloud.machine_state.models import StateInterval
from cloud.maintenance.models import (
    ConditionAssessment,
    MachineVibrationClass,
    MaintenanceSuggestion,
)
from cloud.notify.models import NotificationDelivery
from cloud.oee.models import DowntimeReason, MachineOeeSettings, OeeRollup, ShiftCalendar
from cloud.production.models import (
    BomItem,
    Product,
    Routing,
    RoutingOperation,
    WorkOrder,
    WorkOrderOperation,
)
from cloud.production.trace_models import Consumption, MaterialLot, Unit
from cloud.spc.models import SpcChart, SpcLimits, SpcPoint, SpcViolation
from cloud.timeseries.models import TsLatest, TsMinute, TsSeries, ts_sample

__all__ = [
    "Alarm",
    "AlarmEvent",
    "AlarmLimit",
    "AlarmRuleRow",
    "AlarmShelf",
    "Area",
    "Base",
    "BomItem",
    "ConditionAssessment",
    "Consumption",
    "DeadLetter",
    "DeviceEvent",
    "DowntimeReason",
    "EdgeNode",
    "ErpDelivery",
    "ErpDeliveryAttempt",
    "ErpWebhook",
    "IngestMessage",
    "Line",
    "Machine",
    "MachineOeeSettings",
    "MachineVibrationClass",
    "MaintenanceSuggestion",
    "MaterialLot",
    "NotificationDelivery",
    "OeeRollup",
    "Product",
    "Routing",
    "RoutingOperation",
    "ShiftCalendar",
    "Site",
    "SpcChart",
    "SpcLimits",
    "SpcPoint",
    "SpcViolation",
    "StateInterval",
    "TsLatest",
    "TsMinute",
    "TsSeries",
    "Unit",
    "WorkOrder",
    "WorkOrderOperation",
    "ts_sample",
]
