-- Release the job: it is submitted, or its unfinished rows are resumed in a new Vertex job.
obj.spec.suspend = false
return obj
