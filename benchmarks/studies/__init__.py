"""Studies: one question each, answered once (the numbers behind a default or a finding)."""
