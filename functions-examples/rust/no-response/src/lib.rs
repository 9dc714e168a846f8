//! A broken function: its handler returns without ever setting a response.
//! floe answers 500 `no_response` and retires the instance. Written against
//! the raw wasi-http bindings, since the SDK always responds.

use floe_sdk::__internal::wasip2;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct NoResponse;

impl Guest for NoResponse {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {}
}

wasip2::http::proxy::export!(NoResponse with_types_in wasip2);
