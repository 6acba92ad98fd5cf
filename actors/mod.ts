// The actor kinds brokers run. Workers load this bundle (dist/actors.js) by module path.
export { ReplicaActor } from "./cluster/replica.js";
export { ControllerActor } from "./cluster/controller.js";
export { ProducerActor } from "./client/producer.js";
export { ConsumerActor } from "./client/consumer.js";
export { GroupCoordinatorActor } from "./groups/coordinator.js";
export { FetchServerActor } from "./cluster/fetch-server.js";
export { FetcherActor } from "./cluster/fetcher.js";
export { ProduceServerActor } from "./cluster/produce-server.js";
