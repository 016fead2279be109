//! The function's environment: what the REST api reads, and whether to serve GraphiQL.

use lambda_toolkit::env::{ConfigError, Environment};
use paysaga_aws::doors::DoorConfig;

use crate::graphiql::GraphiqlAssets;

pub struct Config {
    /// What every owners' door reads: the tables, the read models, the limits.
    pub door: DoorConfig,
    /// `GRAPHIQL` (`enabled` or `disabled`, the default) and `GRAPHIQL_ASSETS_URL`.
    pub graphiql: Graphiql,
}

/// Whether the function serves GraphiQL, the in-browser IDE, and where its page loads its
/// assets from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Graphiql {
    /// No page: `GET /graphiql` is a 404, a browser's `GET /graphql` without a query a 400.
    #[default]
    Disabled,
    /// The page, loading its assets from `GRAPHIQL_ASSETS_URL` (a CDN by default).
    Enabled(GraphiqlAssets),
}

impl Config {
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        Ok(Self {
            door: DoorConfig::from_env(env)?,
            graphiql: Graphiql::from_env(env)?,
        })
    }
}

impl Graphiql {
    /// `GRAPHIQL`: `enabled` or `disabled` (the default); `GRAPHIQL_ASSETS_URL`: the base URL of
    /// GraphiQL's assets ([`GraphiqlAssets`]; <https://unpkg.com> by default).
    pub fn from_env(env: &Environment) -> Result<Self, ConfigError> {
        let enabled = match env.optional("GRAPHIQL").as_deref().map(str::trim) {
            None | Some("disabled") => false,
            Some("enabled") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "GRAPHIQL",
                    expected: "enabled or disabled",
                    value: other.to_owned(),
                });
            }
        };
        let assets = match env.optional("GRAPHIQL_ASSETS_URL") {
            None => GraphiqlAssets::default(),
            Some(base) => GraphiqlAssets::parse(&base).ok_or(ConfigError::Invalid {
                name: "GRAPHIQL_ASSETS_URL",
                expected: "an http(s) URL or a path starting with /",
                value: base,
            })?,
        };
        Ok(if enabled {
            Self::Enabled(assets)
        } else {
            Self::Disabled
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphiql_is_off_unless_enabled_and_its_assets_come_from_the_cdn_unless_told() {
        let read =
            |pairs: &[(&str, &str)]| Graphiql::from_env(&Environment::from_pairs(pairs.to_vec()));
        assert_eq!(read(&[]).unwrap(), Graphiql::Disabled);
        assert_eq!(
            read(&[("GRAPHIQL", "disabled")]).unwrap(),
            Graphiql::Disabled
        );
        assert_eq!(
            read(&[("GRAPHIQL", "enabled")]).unwrap(),
            Graphiql::Enabled(GraphiqlAssets::default())
        );
        assert_eq!(
            read(&[
                ("GRAPHIQL", "enabled"),
                (
                    "GRAPHIQL_ASSETS_URL",
                    "http://127.0.0.1:3000/graphiql-assets/"
                )
            ])
            .unwrap(),
            Graphiql::Enabled(
                GraphiqlAssets::parse("http://127.0.0.1:3000/graphiql-assets").unwrap()
            )
        );
        assert!(read(&[("GRAPHIQL", "yes")]).is_err());
        assert!(read(&[("GRAPHIQL", "enabled"), ("GRAPHIQL_ASSETS_URL", "cdn")]).is_err());
    }

    #[test]
    fn the_function_reads_what_the_api_reads_and_the_graphiql_switch() {
        let described = Environment::describe();
        Config::from_env(&described).expect("describing never fails");
        let names: Vec<&str> = described
            .variables()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        for name in [
            "READ_MODELS_TABLE",
            "WALLETS_TABLE",
            "GRAPHIQL",
            "GRAPHIQL_ASSETS_URL",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }
}
