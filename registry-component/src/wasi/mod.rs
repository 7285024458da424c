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
use std::rc::Rc;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

/// The `wasi:http/incoming-handler` export.
struct Registry;

impl wasip2::exports::http::incoming_handler::Guest for Registry {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let mut req = http::request(request);
        let head = req.method == "HEAD";
        let env = Rc::new(Environment::fetch());
        let delete_enabled = env.var("REGISTRY_DELETE_ENABLED").is_none_or(|v| v != "false");
        let settings = registry_auth::Settings::from_vars(|name| env.var(name), |path| std::fs::read_to_string(path));
        let access = Access::from_settings(settings);
        let gc_env = Rc::clone(&env);
        let gc: api::LazyGc =
            std::cell::LazyCell::new(Box::new(move || crate::gc::GcSettings::from_vars(|name| gc_env.var(name))));
        let mirrors_env = Rc::clone(&env);
        let mirrors: crate::proxy::LazyMirrors = std::cell::LazyCell::new(Box::new(move || {
            crate::proxy::Mirrors::from_vars(|name| mirrors_env.var(name), |path| std::fs::read_to_string(path))
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

/// The component's environment (its settings), fetched with one call per
/// request. Not through `std::env`: wasi-libc would copy it all into
/// `environ` first, and each lookup would then scan it and check the whole
/// value (the access-control files are long) before copying it once more.
struct Environment(Vec<(String, String)>);

impl Environment {
    fn fetch() -> Environment {
        Environment(wasip2::cli::environment::get_environment())
    }

    fn var(&self, name: &str) -> Option<String> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone())
    }
}

wasip2::http::proxy::export!(Registry);
