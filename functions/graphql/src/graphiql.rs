//! GraphiQL, the in-browser GraphQL IDE: one static page, served only when the configuration
//! turns it on ([`crate::Config::graphiql`]).
//!
//! The page loads GraphiQL's browser assets (React, ReactDOM, GraphiQL) from
//! [`GraphiqlAssets`], laid out as a CDN does, `<base>/<package>@<version>/<file>`: in AWS a CDN,
//! locally a copy of the same versions served beside the stack (the machine may have no
//! internet). The queries it sends go to the address it was served from, as POST requests.
//!
//! The page holds no token. It reads one from its address's fragment, `…#bearer=<token>`, which
//! a browser never sends to a server (so it reaches no log), and sends it as the
//! `Authorization: Bearer` header of its requests; a header set in GraphiQL's own headers
//! editor wins over it.

/// The versions the page loads (`infra/local/graphiql/package.json` installs the same ones
/// for the local stack).
pub const REACT_VERSION: &str = "18.3.1";
pub const GRAPHIQL_VERSION: &str = "3.8.3";

/// Where GraphiQL's browser assets are served from: a base URL under which
/// `react@18.3.1/umd/react.production.min.js`,
/// `react-dom@18.3.1/umd/react-dom.production.min.js`, `graphiql@3.8.3/graphiql.min.js` and
/// `graphiql@3.8.3/graphiql.min.css` are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphiqlAssets(String);

impl GraphiqlAssets {
    /// The public CDN, where the machine has internet.
    pub const DEFAULT_BASE: &'static str = "https://unpkg.com";

    /// A base URL: absolute (`http://` or `https://`) or a path on the same host (`/…`), with
    /// no quote, angle bracket or space; `None` otherwise.
    pub fn parse(base: &str) -> Option<Self> {
        let base = base.trim().trim_end_matches('/');
        let absolute = base.starts_with("https://") || base.starts_with("http://");
        let same_host = base.starts_with('/') && !base.starts_with("//");
        let plain = base
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\'));
        ((absolute || same_host) && plain).then(|| Self(base.to_owned()))
    }

    pub fn base(&self) -> &str {
        &self.0
    }
}

impl Default for GraphiqlAssets {
    fn default() -> Self {
        Self(Self::DEFAULT_BASE.to_owned())
    }
}

/// The page, loading its assets from `assets`.
pub fn page(assets: &GraphiqlAssets) -> String {
    PAGE.replace("{assets}", assets.base())
        .replace("{react}", REACT_VERSION)
        .replace("{graphiql}", GRAPHIQL_VERSION)
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="robots" content="noindex">
  <meta name="referrer" content="no-referrer">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>paysaga GraphQL</title>
  <style>
    body { margin: 0; height: 100vh; overflow: hidden; }
    #graphiql { height: 100vh; }
  </style>
  <link rel="stylesheet" href="{assets}/graphiql@{graphiql}/graphiql.min.css">
  <script crossorigin src="{assets}/react@{react}/umd/react.production.min.js"></script>
  <script crossorigin src="{assets}/react-dom@{react}/umd/react-dom.production.min.js"></script>
  <script crossorigin src="{assets}/graphiql@{graphiql}/graphiql.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL&hellip; (open this page as /graphiql#bearer=&lt;token&gt;)</div>
  <script>
    // The bearer token, from the fragment of the page's address (#bearer=<token>): a browser
    // never sends a fragment to a server.
    function bearerToken() {
      return new URLSearchParams(window.location.hash.slice(1)).get('bearer');
    }

    // Every request GraphiQL sends carries the token, unless its headers editor sets one.
    function fetchWithBearer(url, options) {
      var headers = Object.assign({}, options && options.headers);
      var token = bearerToken();
      var named = Object.keys(headers).some(function (name) {
        return name.toLowerCase() === 'authorization';
      });
      if (token && !named) {
        headers['Authorization'] = 'Bearer ' + token;
      }
      return window.fetch(url, Object.assign({}, options, { headers: headers, credentials: 'omit' }));
    }

    // Queries go to the GraphQL endpoint beside this page, whatever the stage's path prefix.
    var endpoint = new URL(window.location.pathname.replace(/\/graphiql\/?$/, '/graphql'), window.location.origin);

    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {
        fetcher: GraphiQL.createFetcher({
          url: endpoint.toString(),
          fetch: fetchWithBearer,
          enableIncrementalDelivery: false,
        }),
        defaultEditorToolsVisibility: true,
      })
    );
  </script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_base_is_a_url_or_a_path_and_nothing_that_breaks_out_of_an_attribute() {
        assert_eq!(
            GraphiqlAssets::parse("http://127.0.0.1:3000/assets/")
                .map(|assets| assets.base().to_owned()),
            Some("http://127.0.0.1:3000/assets".to_owned())
        );
        assert!(GraphiqlAssets::parse("/graphiql-assets").is_some());
        for refused in [
            "javascript:alert(1)",
            "//evil.example",
            "https://cdn.example/\"><script>",
            "https://cdn.example/a b",
            "cdn.example",
        ] {
            assert_eq!(GraphiqlAssets::parse(refused), None, "{refused}");
        }
    }

    #[test]
    fn the_page_loads_every_asset_from_the_configured_base_and_none_from_elsewhere() {
        let page = page(&GraphiqlAssets::parse("http://127.0.0.1:3000/assets").unwrap());
        for asset in [
            "http://127.0.0.1:3000/assets/react@18.3.1/umd/react.production.min.js",
            "http://127.0.0.1:3000/assets/react-dom@18.3.1/umd/react-dom.production.min.js",
            "http://127.0.0.1:3000/assets/graphiql@3.8.3/graphiql.min.js",
            "http://127.0.0.1:3000/assets/graphiql@3.8.3/graphiql.min.css",
        ] {
            assert!(page.contains(asset), "{asset}");
        }
        assert!(!page.contains("unpkg.com"));
        for placeholder in ["{assets}", "{react}", "{graphiql}"] {
            assert!(
                !page.contains(placeholder),
                "{placeholder} left in the page"
            );
        }
        assert!(
            page.contains("get('bearer')"),
            "the token comes from the fragment"
        );
    }
}
