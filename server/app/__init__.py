"""The engine put together: the runtime, plan files, the doctor, process-level safety."""
