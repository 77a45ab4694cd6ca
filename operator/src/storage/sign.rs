//! SigV4-signed requests for the MinIO APIs the AWS SDK does not model (admin, listen).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};

/// A `method` request to `url` with `body`, signed for service `s3` in `region`. Errors are
/// messages (the caller knows the operation and the bucket).
pub(crate) fn request(
    credentials: &Credentials,
    region: &str,
    method: &str,
    url: &str,
    body: Vec<u8>,
) -> Result<reqwest::Request, String> {
    let payload_hash = hex::encode(Sha256::digest(&body));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let headers = [("x-amz-content-sha256", payload_hash.as_str())];
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("x-amz-content-sha256", &payload_hash)
        .body(body)
        .map_err(|e| e.to_string())?;
    instructions.apply_to_request_http1x(&mut request);
    reqwest::Request::try_from(request).map_err(|e| e.to_string())
}
