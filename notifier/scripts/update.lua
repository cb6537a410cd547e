-- Apply one change to a job as a new event: see `change` in prelude.lua.
return change(KEYS, ARGV)
