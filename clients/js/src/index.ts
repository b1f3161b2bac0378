export {
  GatewayAgent,
  HISTORY_WINDOW_EVENT_NAME,
  gatewayRoutes,
  type Capabilities,
  type GatewayAgentConfig,
  type MessagePage,
} from "./agent.js";
export {
  GatewayConnectionError,
  ThreadRecreatedError,
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
