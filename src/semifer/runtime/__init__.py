"""What every layer shares below the training engine: process groups (`distributed`), the precision rule
(`precision`), checkpoint files (`checkpoint`) and seeding (`seeding`). Nothing here imports the engine."""
