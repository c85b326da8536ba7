-- Hold the job: before submission it waits; a running Vertex job is cancelled, its unfinished rows kept.
obj.spec.suspend = true
return obj
