-- Actions offered in the Argo CD UI: suspend a job that has not finished, resume a suspended one, re-run a
-- finished one.
local actions = {}
local finished = {Succeeded = true, PartiallySucceeded = true, Failed = true, Cancelled = true}
local phase = obj.status and obj.status.phase
local suspended = obj.spec ~= nil and obj.spec.suspend == true
actions["suspend"] = {["disabled"] = suspended or (phase ~= nil and finished[phase] == true)}
actions["resume"] = {["disabled"] = not suspended}
actions["rerun"] = {["disabled"] = phase == nil or finished[phase] ~= true}
return actions
