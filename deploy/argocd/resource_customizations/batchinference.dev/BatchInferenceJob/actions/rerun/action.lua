-- Re-run a finished job: a new value of the annotation batchinference.dev/rerun starts a new attempt (from the
-- last output when rows failed, from spec.input otherwise). The operator acts on each value once, so the value
-- is the time of the click; a second click within the same second appends "+" to stay new.
local key = "batchinference.dev/rerun"
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local value = os.date("!%Y-%m-%dT%H:%M:%SZ")
local previous = obj.metadata.annotations[key]
if previous ~= nil and string.sub(previous, 1, string.len(value)) == value then
  value = previous .. "+"
end
obj.metadata.annotations[key] = value
return obj
