"""The machinery every actor of the cluster process shares, one floor above the API.

`informer` (one list + one watch per resource, shared, read-only objects from
`readonly`), `workqueue` (client-go's de-duplicating, rate-limited key queue) and
`controller` (mappers on shared informers → own work queue → reconcile workers).
The controllers, the kubelet and the service proxy all build on it.
"""
