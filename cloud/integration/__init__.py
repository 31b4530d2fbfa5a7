"""ERP integration: completion webhooks back to the ERP, with retries and a delivery log."""
