//! The wasm32 glue: the `wasi:http/incoming-handler` export, which turns the
//! wasi:http request into a plain [`crate::http::Request`], runs the
//! handlers over [`storage::WasiStorage`] (the component's `wit/` imports)
//! and sends the answer.

mod bindings;
mod fetch;
mod http;
mod storage;

use crate::api::{self, Ctx};
use crate::auth::Access;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

/// The `wasi:http/incoming-handler` export.
struct Registry;

impl wasip2::exports::http::incoming_handler::Guest for Registry {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let mut req = http::request(request);
        let head = req.method == "HEAD";
        let delete_enabled = std::env::var("REGISTRY_DELETE_ENABLED").map_or(true, |v| v != "false");
        let settings =
            registry_auth::Settings::from_vars(|name| std::env::var(name).ok(), |path| std::fs::read_to_string(path));
        let access = Access::from_settings(settings);
        let gc: api::LazyGc =
            std::cell::LazyCell::new(Box::new(|| crate::gc::GcSettings::from_vars(|name| std::env::var(name).ok())));
        let mirrors: crate::proxy::LazyMirrors = std::cell::LazyCell::new(Box::new(|| {
            crate::proxy::Mirrors::from_vars(|name| std::env::var(name).ok(), |path| std::fs::read_to_string(path))
        }));
        let ctx = Ctx {
            storage: storage::WasiStorage,
            delete_enabled,
            access,
            gc,
            mirrors,
            upstream: Box::new(fetch::WasiFetch),
        };
        let response = api::respond(&ctx, &mut req);
        http::send(response, response_out, head);
    }
}

wasip2::http::proxy::export!(Registry);
