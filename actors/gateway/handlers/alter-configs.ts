// AlterConfigs through the controller (ClusterClient.alterTopicConfigs). Kafka's AlterConfigs
// replaces a resource's whole set of configs: the ones a request does not name return to their
// defaults. So does this: each topic gets exactly the configs named (a null value: the default),
// with the same validation as Skein's own alterConfigs. Brokers have no configs a Kafka client
// can set; a broker resource is refused.

import { AlterConfigs } from "../../../protocol/kafka/alter-configs.js";
import { ConfigResourceType } from "../../../protocol/kafka/describe-configs.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { ErrorCode, SkeinError } from "../../../protocol/errors.js";
import type { RequestOf, ResponseIn } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { failure } from "./admin.js";

type ResourceRequest = RequestOf<typeof AlterConfigs>["resources"][number];
type ResourceOut = ResponseIn<typeof AlterConfigs>["responses"][number];

export const alterConfigsHandler = defineHandler(AlterConfigs, async (request, ctx) => ({
  throttleTimeMs: 0,
  responses: await Promise.all(request.resources.map((r) => alter(ctx.services, r, request.validateOnly))),
}));

async function alter(s: GatewayServices, r: ResourceRequest, validateOnly: boolean): Promise<ResourceOut> {
  const base = { resourceType: r.resourceType, resourceName: r.resourceName };
  if (r.resourceType !== ConfigResourceType.TOPIC) {
    return { ...base, errorCode: KafkaErrorCode.INVALID_REQUEST, errorMessage: `resource type ${r.resourceType} cannot be altered here (2 = topic)` };
  }
  try {
    const topic = s.view.topic(r.resourceName) ?? (await s.client.describeTopic(r.resourceName).catch(() => null));
    if (!topic) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${r.resourceName} does not exist`, { topic: r.resourceName });
    // Replace semantics: every config set now and not named is reset (null).
    const changes: Record<string, string | null> = {};
    for (const name of Object.keys(topic.configs)) changes[name] = null;
    for (const c of r.configs) changes[c.name] = c.value;
    await s.client.alterTopicConfigs(r.resourceName, changes, validateOnly);
    return { ...base, errorCode: KafkaErrorCode.NONE, errorMessage: null };
  } catch (e) {
    const f = failure(r.resourceName, e);
    return { ...base, errorCode: f.errorCode, errorMessage: f.errorMessage };
  }
}
