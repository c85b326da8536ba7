-- Argo CD health for batchinference.dev/BatchInferenceJob.
-- Healthy when Complete, Degraded when Failed (also when no request succeeded), Suspended when suspended
-- or paused by Vertex, Unknown when Vertex reports a state the operator does not know, Progressing otherwise.
-- A status older than the spec (observedGeneration behind generation) is Progressing, so health
-- does not flap while the operator catches up with an edit.
local hs = {}

local function condition(status, type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to accept the job"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local failed = condition(status, "Failed")
if failed ~= nil and failed.status == "True" then
  hs.status = "Degraded"
  hs.message = failed.message or status.message or failed.reason
  return hs
end

local complete = condition(status, "Complete")
if complete ~= nil and complete.status == "True" then
  hs.status = "Healthy"
  hs.message = complete.message or status.message or complete.reason
  return hs
end

local suspended = condition(status, "Suspended")
if status.phase == "Suspended" or (suspended ~= nil and suspended.status == "True") then
  hs.status = "Suspended"
  hs.message = status.message or "Suspended"
  return hs
end

if status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = status.message or "Vertex paused the job"
  return hs
end

if status.phase == "Unknown" then
  hs.status = "Unknown"
  hs.message = status.message or "Vertex reports a job state the operator does not know"
  return hs
end

hs.status = "Progressing"
hs.message = status.message or status.phase
return hs
