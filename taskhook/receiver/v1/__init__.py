"""The v1 endpoints: Scale's v1 task API."""
