"""The edge agent: polls PLCs, turns readings into samples and streams them over MQTT without loss."""
