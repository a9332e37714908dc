"""Wire schemas: ZStack's JSON (camelCase), separate from the internal types services use."""
