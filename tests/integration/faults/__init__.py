"""The randomised fault test's parts: operations and faults, what was seen, the invariants."""
