"""A Kubernetes API server for tests and the local stack, built on kmock.

kmock (by kopf's author) gives the HTTP server, discovery, Status errors, its request log and its
DSL for injecting faults. Its own object emulation is too loose for kopf and kubectl (no
resourceVersion, no status split, no selectors, no watch resumption), so this package serves the
resource paths itself with the semantics a real kube-apiserver has where clients depend on them:

- create: uid, creationTimestamp, generation, resourceVersion, namespace from the URL, generateName,
  201; the namespace must exist; names are validated;
- every write gets a new resourceVersion; a stale one is a 409; a no-op write is not a write;
- generation moves with spec only; the main resource ignores status and `/status` ignores the rest;
- merge patch, JSON patch (a failed `test` is a 422), PUT with a required resourceVersion;
- finalizers and deletionTimestamp; namespaces that cascade their deletion;
- list with kind, apiVersion and a resourceVersion; label and field selectors; limit/continue;
- watch from a resourceVersion (410 when too old), selector transitions, timeoutSeconds;
- server-side tables from the CRD's printer columns, for `kubectl get`;
- the CRD enforced on every write: schema, defaults, pruning or strict unknown fields, CEL rules;
- OpenAPI v3 documents generated from the CRD, so `kubectl apply` validates as on a real cluster.

The modules, by concern: `server` (routing and dispatch), `store` (objects, resourceVersions, the
event history, watches), `reads` and `writes` (the verbs), `schema` (the CRD's structural schema and
CEL rules), `resources`, `selectors`, `tables`, `openapi`, `discovery`, `errors`, and `kmock_private`
(every use of kmock's private parts). Only `launch` knows the operator: it starts the server with
our CRD. Nothing is imported here, so importing one module does not pull in the others.
"""
