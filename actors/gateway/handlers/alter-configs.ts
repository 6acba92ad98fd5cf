// AlterConfigs and IncrementalAlterConfigs through the controller (ClusterClient.alterTopicConfigs),
// with the same validation as Skein's own alterConfigs. They differ in what a request means:
// * AlterConfigs replaces a resource's whole set of configs: the ones a request does not name
//   return to their defaults (each topic gets exactly the configs named; a null value: the default).
// * IncrementalAlterConfigs changes only the configs named: SET gives a value, DELETE returns one
//   to its default. APPEND and SUBTRACT are for list configs, which Skein's topics have none of
//   (cleanup.policy is one of delete or compact): refused with INVALID_CONFIG.
// Brokers have no configs a Kafka client can set; a broker resource is refused.

import { AlterConfigs } from "../../../protocol/kafka/alter-configs.js";
import { ConfigOperation, IncrementalAlterConfigs } from "../../../protocol/kafka/incremental-alter-configs.js";
import { ConfigResourceType } from "../../../protocol/kafka/describe-configs.js";
import { KafkaErrorCode } from "../../../protocol/kafka/errors.js";
import { ErrorCode, SkeinError } from "../../../protocol/errors.js";
import type { RequestOf, ResponseIn } from "../../../protocol/kafka/api.js";
import { defineHandler } from "../handler.js";
import type { GatewayServices } from "../types.js";
import { failure } from "./admin.js";

type ResourceOut = ResponseIn<typeof AlterConfigs>["responses"][number];
type Changes = Record<string, string | null>;
/** What the handlers need of a topic: its configs as set now. */
type TopicConfigsNow = { configs: Record<string, unknown> };

export const alterConfigsHandler = defineHandler(AlterConfigs, async (request, ctx) => ({
  throttleTimeMs: 0,
  responses: await Promise.all(request.resources.map((r) => alterTopic(ctx.services, r, request.validateOnly, (topic) => replacing(topic, r.configs)))),
}));

export const incrementalAlterConfigsHandler = defineHandler(IncrementalAlterConfigs, async (request, ctx) => ({
  throttleTimeMs: 0,
  responses: await Promise.all(request.resources.map((r) => alterTopic(ctx.services, r, request.validateOnly, () => incremental(r.resourceName, r.configs)))),
}));

/** Kafka's replace semantics: every config set now and not named is reset (null). */
function replacing(topic: TopicConfigsNow, configs: RequestOf<typeof AlterConfigs>["resources"][number]["configs"]): Changes {
  const changes: Changes = {};
  for (const name of Object.keys(topic.configs)) changes[name] = null;
  for (const c of configs) changes[c.name] = c.value;
  return changes;
}

function incremental(topic: string, configs: RequestOf<typeof IncrementalAlterConfigs>["resources"][number]["configs"]): Changes {
  const changes: Changes = {};
  const invalid = (message: string) => new SkeinError(ErrorCode.INVALID_CONFIG, message, { topic, field: "configs" });
  for (const c of configs) {
    if (c.name in changes) throw invalid(`config ${c.name} is named more than once`);
    if (c.configOperation === ConfigOperation.SET) {
      if (c.value === null) throw invalid(`SET of ${c.name} needs a value (DELETE returns it to its default)`);
      changes[c.name] = c.value;
    } else if (c.configOperation === ConfigOperation.DELETE) {
      changes[c.name] = null;
    } else if (c.configOperation === ConfigOperation.APPEND || c.configOperation === ConfigOperation.SUBTRACT) {
      throw invalid(`${c.name} is not a list config: APPEND and SUBTRACT do not apply (use SET)`);
    } else {
      throw invalid(`unknown config operation ${c.configOperation} for ${c.name} (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)`);
    }
  }
  return changes;
}

async function alterTopic(
  s: GatewayServices,
  r: { resourceType: number; resourceName: string },
  validateOnly: boolean,
  changesFor: (topic: TopicConfigsNow) => Changes,
): Promise<ResourceOut> {
  const base = { resourceType: r.resourceType, resourceName: r.resourceName };
  if (r.resourceType !== ConfigResourceType.TOPIC) {
    return { ...base, errorCode: KafkaErrorCode.INVALID_REQUEST, errorMessage: `resource type ${r.resourceType} cannot be altered here (2 = topic)` };
  }
  try {
    const topic = s.view.topic(r.resourceName) ?? (await s.client.describeTopic(r.resourceName).catch(() => null));
    if (!topic) throw new SkeinError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${r.resourceName} does not exist`, { topic: r.resourceName });
    await s.client.alterTopicConfigs(r.resourceName, changesFor(topic), validateOnly);
    return { ...base, errorCode: KafkaErrorCode.NONE, errorMessage: null };
  } catch (e) {
    const f = failure(r.resourceName, e);
    return { ...base, errorCode: f.errorCode, errorMessage: f.errorMessage };
  }
}
