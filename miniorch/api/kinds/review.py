"""The reviews: virtual kinds that answer a question and are never stored.

    kubectl auth can-i VERB RES ──POST selfsubjectaccessreviews──► _access_review
    kubectl auth can-i --list  ──POST selfsubjectrulesreviews───► _rules_review
    kubectl auth whoami        ──POST selfsubjectreviews────────► _whoami
                                        │
    Registry.create ─► Kind.answer_request: type check → validate → `answer` hook
                       (no defaulting of metadata, no name, no store write)

Two kinds of callers (authn.CALLER, set by the server's authentication): the
cluster admin its kubeconfig names (the static bearer token), whom kube-apiserver
would let do anything (group `system:masters`, bound to the `cluster-admin`
ClusterRole), and service accounts (their pods' tokens). miniorch has no RBAC yet:
a service account may do what the admin may. The answers say so instead of
pretending: `whoami` names the real user and groups, an access review is allowed
with the reason why (the RBAC one for the admin, "no authorization" otherwise).

Invariants: a review's Resource serves only `create` (the server answers 405 to any
other verb); the answer echoes the request's spec and adds `status`.
"""

from __future__ import annotations

import copy

from miniorch.api.authn import ADMIN, CALLER
from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind, WriteContext
from miniorch.api.resource import Resource
from miniorch.api.validation import required
from miniorch.core.objects import Obj, as_dict

AUTHZ = "io.k8s.api.authorization.v1."
AUTHN = "io.k8s.api.authentication.v1."

SELF_SUBJECT_ACCESS_REVIEWS = Resource(
    group="authorization.k8s.io", version="v1", plural="selfsubjectaccessreviews",
    singular="selfsubjectaccessreview", kind="SelfSubjectAccessReview", namespaced=False,
    verbs=("create",))
SELF_SUBJECT_RULES_REVIEWS = Resource(
    group="authorization.k8s.io", version="v1", plural="selfsubjectrulesreviews",
    singular="selfsubjectrulesreview", kind="SelfSubjectRulesReview", namespaced=False,
    verbs=("create",))
SELF_SUBJECT_REVIEWS = Resource(
    group="authentication.k8s.io", version="v1", plural="selfsubjectreviews",
    singular="selfsubjectreview", kind="SelfSubjectReview", namespaced=False,
    verbs=("create",))

ALLOWED_REASON = ('RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole '
                  '"cluster-admin" to Group "system:masters"')
UNRESTRICTED_REASON = ("miniorch has no RBAC: every authenticated user, service accounts "
                       "included, may do everything the cluster admin may")

_REVIEW = {"apiVersion": "string", "kind": "string", "metadata": "ObjectMeta"}

ACCESS_DEFINITIONS: dict[str, dict[str, str]] = {
    AUTHZ + "SelfSubjectAccessReview": {
        **_REVIEW, "spec": "SelfSubjectAccessReviewSpec!", "status": "SubjectAccessReviewStatus"},
    AUTHZ + "SelfSubjectAccessReviewSpec": {
        "resourceAttributes": "ResourceAttributes",
        "nonResourceAttributes": "NonResourceAttributes"},
    AUTHZ + "ResourceAttributes": {
        "namespace": "string", "verb": "string", "group": "string", "version": "string",
        "resource": "string", "subresource": "string", "name": "string",
        "fieldSelector": "any", "labelSelector": "any"},
    AUTHZ + "NonResourceAttributes": {"path": "string", "verb": "string"},
    AUTHZ + "SubjectAccessReviewStatus": {
        "allowed": "boolean!", "denied": "boolean", "reason": "string",
        "evaluationError": "string"},
}
RULES_DEFINITIONS: dict[str, dict[str, str]] = {
    AUTHZ + "SelfSubjectRulesReview": {
        **_REVIEW, "spec": "SelfSubjectRulesReviewSpec!", "status": "SubjectRulesReviewStatus"},
    AUTHZ + "SelfSubjectRulesReviewSpec": {"namespace": "string"},
    AUTHZ + "SubjectRulesReviewStatus": {
        "resourceRules": "[]ResourceRule!", "nonResourceRules": "[]NonResourceRule!",
        "incomplete": "boolean!", "evaluationError": "string"},
    AUTHZ + "ResourceRule": {"verbs": "[]string!", "apiGroups": "[]string",
                             "resources": "[]string", "resourceNames": "[]string"},
    AUTHZ + "NonResourceRule": {"verbs": "[]string!", "nonResourceURLs": "[]string"},
}
WHOAMI_DEFINITIONS: dict[str, dict[str, str]] = {
    AUTHN + "SelfSubjectReview": {**_REVIEW, "status": "SelfSubjectReviewStatus"},
    AUTHN + "SelfSubjectReviewStatus": {"userInfo": "UserInfo"},
    AUTHN + "UserInfo": {"username": "string", "uid": "string", "groups": "[]string",
                         "extra": "{}[]string"},
}


def _answer(review: Obj, status: Obj) -> Obj:
    out = copy.deepcopy(review)
    meta = as_dict(out.get("metadata"))
    # kube-apiserver echoes the metadata with a zero creationTimestamp.
    out["metadata"] = {**meta, "creationTimestamp": None}
    out["status"] = status
    return out


def _validate_access(review: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(review.get("spec"))
    if not spec.get("resourceAttributes") and not spec.get("nonResourceAttributes"):
        return [required("spec.resourceAttributes",
                         "exactly one of nonResourceAttributes or resourceAttributes must be "
                         "specified")]
    return []


def _access_review(ctx: WriteContext, review: Obj) -> Obj:
    reason = ALLOWED_REASON if CALLER.get() == ADMIN else UNRESTRICTED_REASON
    return _answer(review, {"allowed": True, "reason": reason})


def _rules_review(ctx: WriteContext, review: Obj) -> Obj:
    review_rules = [
        {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
         "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
        {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
         "resources": ["selfsubjectreviews"]},
    ]
    return _answer(review, {
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                          *review_rules],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
        "incomplete": False})


def _whoami(ctx: WriteContext, review: Obj) -> Obj:
    return _answer(review, {"userInfo": CALLER.get().to_obj()})


SELF_SUBJECT_ACCESS_REVIEW = Kind(resource=SELF_SUBJECT_ACCESS_REVIEWS,
                                  definitions=ACCESS_DEFINITIONS, validate=_validate_access,
                                  answer=_access_review)
SELF_SUBJECT_RULES_REVIEW = Kind(resource=SELF_SUBJECT_RULES_REVIEWS,
                                 definitions=RULES_DEFINITIONS, answer=_rules_review)
SELF_SUBJECT_REVIEW = Kind(resource=SELF_SUBJECT_REVIEWS, definitions=WHOAMI_DEFINITIONS,
                           answer=_whoami)
