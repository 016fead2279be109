//! Several functions with HTTP routes behind one address, as one API Gateway HTTP API puts
//! them: each request goes to the function whose route (method and path template, as the
//! template writes them: `/wallets/{wallet_id}`, `/{proxy+}`, `$default`) matches it best,
//! and one that matches no route is a 404 like API Gateway's. With a single HTTP function
//! there is no front: it serves the address itself.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::wiring::HttpRoute;

/// The largest request body forwarded (API Gateway's payload limit is 10 MB).
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Parameter,
    /// `{name+}`: the rest of the path.
    Greedy,
}

#[derive(Debug, Clone)]
struct Route {
    method: String,
    /// `None` for `$default`.
    segments: Option<Vec<Segment>>,
    target: SocketAddr,
}

impl Route {
    /// How well it matches `method path`, if it does: literal segments count most, a method
    /// named beats `ANY`, `$default` least (API Gateway picks the most specific route).
    fn score(&self, method: &str, path: &[&str]) -> Option<(usize, usize, bool)> {
        let method_named = self.method.eq_ignore_ascii_case(method);
        if !method_named && self.method != "ANY" {
            return None;
        }
        let Some(segments) = &self.segments else {
            return Some((0, 0, method_named));
        };
        let mut literals = 0;
        for (index, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Greedy => {
                    return (path.len() > index).then_some((1, literals, method_named));
                }
                Segment::Literal(text) if path.get(index) == Some(&text.as_str()) => literals += 1,
                Segment::Parameter if path.get(index).is_some_and(|part| !part.is_empty()) => {}
                _ => return None,
            }
        }
        (path.len() == segments.len()).then_some((2, literals, method_named))
    }
}

/// Which function serves which route.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn add(&mut self, route: &HttpRoute, target: SocketAddr) {
        let segments = (route.path != "$default").then(|| {
            path_parts(&route.path)
                .map(
                    |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                        Some(name) if name.ends_with('+') => Segment::Greedy,
                        Some(_) => Segment::Parameter,
                        None => Segment::Literal(part.to_owned()),
                    },
                )
                .collect()
        });
        self.routes.push(Route {
            method: route.method.to_ascii_uppercase(),
            segments,
            target,
        });
    }

    /// The function serving `method path`, if a route matches.
    pub fn target(&self, method: &str, path: &str) -> Option<SocketAddr> {
        let parts: Vec<&str> = path_parts(path).collect();
        self.routes
            .iter()
            .filter_map(|route| {
                route
                    .score(method, &parts)
                    .map(|score| (score, route.target))
            })
            .max_by_key(|(score, _)| *score)
            .map(|(_, target)| target)
    }
}

fn path_parts(path: &str) -> impl Iterator<Item = &str> {
    path.split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .filter(|part| !part.is_empty())
}

struct Front {
    routes: RouteTable,
    client: reqwest::Client,
}

/// Serves `routes` on `listener` until `shutdown`, and the files of each of `assets` under its
/// prefix (API Gateway serves no files: in AWS a CDN does; locally there may be no internet).
pub async fn serve(
    listener: TcpListener,
    routes: RouteTable,
    assets: &[crate::cli::StaticAssets],
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let front = Arc::new(Front {
        routes,
        client: reqwest::Client::new(),
    });
    let mut router = Router::new().fallback(forward).with_state(front);
    for served in assets {
        router = router.nest_service(
            &served.prefix,
            tower_http::services::ServeDir::new(&served.dir),
        );
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

fn gateway_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

async fn forward(State(front): State<Arc<Front>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(target) = front.routes.target(parts.method.as_str(), parts.uri.path()) else {
        return gateway_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = front
        .client
        .request(parts.method, format!("http://{target}{path_and_query}"))
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%target, error = %error, "the function serving the route did not answer");
            return gateway_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !is_hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    match answer.bytes().await {
        Ok(bytes) => response
            .body(Body::from(bytes))
            .unwrap_or_else(|_| gateway_error(StatusCode::BAD_GATEWAY, "Bad Gateway")),
        Err(_) => gateway_error(StatusCode::BAD_GATEWAY, "Bad Gateway"),
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::HOST,
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
        header::UPGRADE,
    ]
    .contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> HttpRoute {
        HttpRoute {
            method: method.to_owned(),
            path: path.to_owned(),
        }
    }

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_most_specific_route_wins() {
        let mut table = RouteTable::default();
        table.add(&route("GET", "/wallets/{wallet_id}"), address(1));
        table.add(
            &route("POST", "/admin/parked/{parked_id}/replay"),
            address(2),
        );
        table.add(&route("ANY", "/admin/{proxy+}"), address(3));
        table.add(&route("ANY", "$default"), address(4));
        table.add(&route("GET", "/payments"), address(5));
        assert_eq!(table.target("GET", "/wallets/wal_1"), Some(address(1)));
        assert_eq!(
            table.target("POST", "/admin/parked/p%2F1/replay"),
            Some(address(2))
        );
        assert_eq!(
            table.target("GET", "/admin/parked/p1/replay"),
            Some(address(3))
        );
        assert_eq!(
            table.target("GET", "/payments?wallet=wal_1"),
            Some(address(5))
        );
        assert_eq!(table.target("DELETE", "/wallets/wal_1"), Some(address(4)));
    }

    #[test]
    fn without_a_matching_route_there_is_no_target() {
        let mut table = RouteTable::default();
        table.add(&route("GET", "/wallets/{wallet_id}"), address(1));
        assert_eq!(table.target("GET", "/wallets"), None);
        assert_eq!(table.target("GET", "/wallets/wal_1/deposits"), None);
        assert_eq!(table.target("POST", "/wallets/wal_1"), None);
    }

    #[tokio::test]
    async fn requests_reach_the_function_of_their_route_or_the_assets_and_others_are_a_404() {
        async fn function(name: &'static str) -> SocketAddr {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let app = Router::new().fallback(move |request: Request| async move {
                format!("{name} {} {}", request.method(), request.uri())
            });
            tokio::spawn(async move { axum::serve(listener, app).await });
            address
        }
        let (api, admin) = (function("api").await, function("admin").await);
        let mut table = RouteTable::default();
        table.add(&route("GET", "/wallets/{wallet_id}"), api);
        table.add(&route("POST", "/admin/read-models/rebuild"), admin);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let front = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let assets_dir = tempfile::tempdir().expect("a scratch directory");
        std::fs::create_dir_all(assets_dir.path().join("react@18.3.1/umd")).expect("a directory");
        std::fs::write(
            assets_dir.path().join("react@18.3.1/umd/react.js"),
            "window.React = {};",
        )
        .expect("an asset");
        let assets = [crate::cli::StaticAssets {
            prefix: "/graphiql/assets".to_owned(),
            dir: assets_dir.path().to_owned(),
        }];
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve(listener, table, &assets, shutdown).await }
        });

        let client = reqwest::Client::new();
        let answer = |method: reqwest::Method, path: &'static str| {
            let request = client.request(method, format!("http://{front}{path}"));
            async move {
                let response = request.body("{}").send().await.expect("an answer");
                (
                    response.status().as_u16(),
                    response.text().await.expect("a body"),
                )
            }
        };
        assert_eq!(
            answer(reqwest::Method::GET, "/wallets/wal_1?x=1").await,
            (200, "api GET /wallets/wal_1?x=1".to_owned())
        );
        assert_eq!(
            answer(reqwest::Method::POST, "/admin/read-models/rebuild").await,
            (200, "admin POST /admin/read-models/rebuild".to_owned())
        );
        assert_eq!(
            answer(reqwest::Method::GET, "/nowhere").await,
            (404, r#"{"message":"Not Found"}"#.to_owned())
        );
        assert_eq!(
            answer(
                reqwest::Method::GET,
                "/graphiql/assets/react@18.3.1/umd/react.js"
            )
            .await,
            (200, "window.React = {};".to_owned()),
            "a static asset"
        );
        assert_eq!(
            answer(reqwest::Method::GET, "/graphiql/assets/none.js")
                .await
                .0,
            404
        );
        shutdown.cancel();
    }
}
