-- Actions offered in the Argo CD UI: suspend a job that has not finished, resume a suspended one.
local actions = {}
local finished = {Succeeded = true, PartiallySucceeded = true, Failed = true, Cancelled = true}
local phase = obj.status and obj.status.phase
local suspended = obj.spec ~= nil and obj.spec.suspend == true
actions["suspend"] = {["disabled"] = suspended or (phase ~= nil and finished[phase] == true)}
actions["resume"] = {["disabled"] = not suspended}
return actions
