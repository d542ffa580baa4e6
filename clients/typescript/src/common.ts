// What both entries (Node: index.ts, browsers: web.ts) export: the generated messages, enums and
// service descriptors, the clients, pagination, resumable streams and errors.

export * from "./gen/conclave/v1/admin_pb.js";
export * from "./gen/conclave/v1/artifacts_pb.js";
export * from "./gen/conclave/v1/debates_pb.js";
export * from "./gen/conclave/v1/missions_pb.js";
export * from "./gen/conclave/v1/models_pb.js";
export * from "./gen/conclave/v1/runs_pb.js";
export * from "./gen/conclave/v1/stages_pb.js";
export * from "./gen/conclave/v1/tasks_pb.js";
export * from "./gen/conclave/v1/workers_pb.js";
export { BadRequestSchema, ErrorInfoSchema, type BadRequest, type ErrorInfo } from "./gen/google/rpc/error_details_pb.js";
export { Health, HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";

export { create, fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
export { createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";

export { SERVICES, bearerToken, clientsFor, withConclaveErrors, type ConclaveClient, type ConclaveClients, type TokenSource } from "./clients.js";
export { CLIENT_ERROR_DOMAIN, CONCLAVE_ERROR_DOMAIN, Code, ConclaveError, codeName, isConclaveError, isDisconnect, type ConclaveErrorInit, type FieldViolation } from "./errors.js";
export { followEvents, followLogs, sleep, type FollowLogsOptions, type FollowOptions, type ReconnectInfo, type RetryOptions } from "./follow.js";
export { listAll, paginate } from "./paginate.js";
