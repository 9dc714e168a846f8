//! Host-side bindings for the `floe:function` WIT package (`wit/`): the one
//! place where `bindgen!` runs. The `wasi:http` bindings come from
//! `wasmtime-wasi-http`.
#![expect(missing_docs, reason = "bindgen-generated code")]

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "floe:function/event-exports",
        exports: { default: async },
    });
}

pub use generated::exports::floe::function::event;

/// The `floe:function/gpu` interface functions import.
#[cfg(feature = "gpu")]
pub mod gpu {
    mod generated {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "floe:function/gpu-imports",
            imports: { default: async | trappable },
            with: {
                "floe:function/gpu.pipeline": crate::gpu::PipelineResource,
            },
        });
    }

    pub use generated::floe::function::gpu::*;
}

/// `floe:function/trigger`: what started an invocation.
pub mod trigger {
    mod generated {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "floe:function/trigger-imports",
        });
    }

    pub use generated::floe::function::trigger::*;
}

/// `floe:function/mqtt`: publishing through the function's outbox.
pub mod mqtt {
    mod generated {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "floe:function/mqtt-imports",
            imports: { default: async },
        });
    }

    pub use generated::floe::function::mqtt::*;
}
