//! end-1: `GET /v2/` — the API version check.

use crate::error::RegistryError;
use crate::http::Response;

/// end-1: answers 200 with an empty JSON object.
pub fn get<R>() -> Result<Response<R>, RegistryError> {
    Ok(Response::json(200, "{}".into()))
}
