// Reads [{identityPolicies, principal, action, resource, accountId, context, serviceControlPolicies?,
// permissionBoundaryPolicies?, resourcePolicy?}] as JSON on stdin and prints one result per
// request ({result: "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied"} or {error}), evaluated by
// @cloud-copilot/iam-simulate: AWS's evaluation logic and condition operators, and its IAM
// data (actions, resource types and condition keys per action) to reject requests that name
// an unknown action, a resource of the wrong type or a context key the action does not have.
// Optional: serviceControlPolicies (documents of one organization level, applied to the
// principal's account; include FullAWSAccess as AWS does), permissionBoundaryPolicies
// (documents) and resourcePolicy (a document).
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const requests = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const named = (prefix, policies) => policies.map((policy, i) => ({ name: `${prefix}${i}`, policy }))
const results = []
for (const r of requests) {
  const scps = r.serviceControlPolicies ?? []
  const simulation = {
    identityPolicies: named('policy', r.identityPolicies),
    serviceControlPolicies: scps.length ? [{ orgIdentifier: 'ou-keyrot', policies: named('scp', scps) }] : [],
    resourceControlPolicies: [],
    resourcePolicy: r.resourcePolicy,
    permissionBoundaryPolicies: r.permissionBoundaryPolicies ? named('boundary', r.permissionBoundaryPolicies) : undefined,
    request: {
      principal: r.principal,
      action: r.action,
      resource: { resource: r.resource, accountId: r.accountId },
      contextVariables: r.context ?? {},
    },
  }
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    results.push({ error: response.errors })
  } else {
    // Context keys the action does not support are ignored by the simulator (as by IAM):
    // reported so that the tests can refuse them.
    const ignored = response.resultType === 'single' ? response.result.ignoredContextKeys ?? [] : []
    results.push({ result: response.overallResult, ignoredContextKeys: ignored })
  }
}
process.stdout.write(JSON.stringify(results))
