export { GatewayAgent, gatewayRoutes, type Capabilities, type GatewayAgentConfig } from "./agent.js";
export {
  GatewayConnectionError,
  type GatewayRoutes,
  type HttpError,
  type ReconnectInfo,
  type StreamMode,
} from "./stream.js";
export {
  DEFAULT_BACKOFF,
  DEFAULT_MAX_ATTEMPTS,
  backoffDelay,
  type BackoffOptions,
} from "./backoff.js";
export { SseFrameParser, type SseFrame } from "./sse.js";
