"""ION Ops capabilities, one package per deployed function family."""
