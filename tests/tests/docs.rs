//! The README and the pages under `docs/` hold together: every relative link in them resolves
//! (to a file or folder of the repository, and a `#fragment` to a heading of the page it names,
//! slugged as GitHub slugs headings), the README links to every page of `docs/`, and the README
//! stays a front door, under 300 lines.
//!
//! Needs no local stack: it runs with `cargo test --workspace` (`make unit`, `make test`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use paysaga_tests::repo_root;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// The README has fewer lines than this: what does not fit belongs in a page of `docs/`.
const README_MAX_LINES: usize = 300;

/// A link as written in a Markdown file.
struct Link {
    /// Where it points, as written (`docs/saga.md#events`).
    destination: String,
    /// Its line in the file, from 1.
    line: usize,
}

/// What the link check needs of one Markdown file.
struct Page {
    links: Vec<Link>,
    /// The anchors GitHub gives its headings.
    anchors: BTreeSet<String>,
}

impl Page {
    fn read(path: &Path) -> Page {
        let text = fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        Page::parse(&text)
    }

    fn parse(text: &str) -> Page {
        let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
        let mut links = Vec::new();
        let mut anchors = BTreeSet::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        // The text of the heading being read, if any.
        let mut heading: Option<String> = None;
        let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
        for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
            match event {
                Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                    links.push(Link {
                        destination: dest_url.into_string(),
                        line: line_of(range.start),
                    });
                }
                Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
                Event::Text(text) | Event::Code(text) => {
                    if let Some(heading) = heading.as_mut() {
                        heading.push_str(&text);
                    }
                }
                Event::End(TagEnd::Heading(_)) => {
                    let slug = slug(&heading.take().unwrap_or_default());
                    // GitHub numbers a heading's repeats: `usage`, `usage-1`, `usage-2`.
                    let repeats = seen.entry(slug.clone()).or_insert(0);
                    let anchor = match *repeats {
                        0 => slug,
                        n => format!("{slug}-{n}"),
                    };
                    *repeats += 1;
                    anchors.insert(anchor);
                }
                _ => {}
            }
        }
        Page { links, anchors }
    }
}

/// A heading's anchor as GitHub makes it: lowercase, each space a `-`, and every character but
/// letters, digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// Whether a link leaves the repository (a web address, an e-mail address).
fn is_external(destination: &str) -> bool {
    destination.contains("://") || destination.starts_with("mailto:")
}

/// The README and every page of `docs/`, as paths from the repository's root.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    files.extend(docs_pages(root));
    files
}

/// Every page of `docs/` (`docs/*.md`), sorted.
fn docs_pages(root: &Path) -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ is there")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| {
            path.strip_prefix(root)
                .expect("under the root")
                .to_path_buf()
        })
        .collect();
    pages.sort();
    pages
}

/// Where a relative link of `from` points, as a path from the repository's root, or why it
/// cannot point anywhere.
fn resolve(root: &Path, from: &Path, path: &str) -> Result<PathBuf, String> {
    let mut resolved = from.parent().unwrap_or(Path::new("")).to_path_buf();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if !resolved.pop() {
                    return Err("leaves the repository".to_owned());
                }
            }
            part => resolved.push(part),
        }
    }
    if root.join(&resolved).exists() {
        Ok(resolved)
    } else {
        Err(format!("{} does not exist", resolved.display()))
    }
}

/// What is wrong with `link` of the page `from`, if anything.
fn check_link(
    root: &Path,
    from: &Path,
    link: &Link,
    pages: &mut BTreeMap<PathBuf, Page>,
) -> Option<String> {
    let destination = link.destination.as_str();
    if is_external(destination) {
        return None;
    }
    let (path, fragment) = match destination.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (destination, None),
    };
    if path.is_empty() && fragment.is_none() {
        return Some("an empty link".to_owned());
    }
    let target = if path.is_empty() {
        from.to_path_buf()
    } else {
        match resolve(root, from, path) {
            Ok(target) => target,
            Err(why) => return Some(why),
        }
    };
    let fragment = fragment?;
    if target.extension().is_none_or(|ext| ext != "md") {
        // GitHub's anchors into a source file are its lines: `#L12`, `#L12-L20`.
        let lines = fragment.split('-').all(|part| {
            part.strip_prefix('L')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        });
        return (!lines).then(|| format!("#{fragment}: not a line of {}", target.display()));
    }
    let page = pages
        .entry(target.clone())
        .or_insert_with(|| Page::read(&root.join(&target)));
    (!page.anchors.contains(fragment)).then(|| {
        format!(
            "#{fragment}: no such heading in {} (its anchors: {})",
            target.display(),
            page.anchors.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

#[test]
fn every_relative_link_of_the_readme_and_docs_resolves() {
    let root = repo_root();
    let files = markdown_files(&root);
    assert!(files.len() > 1, "docs/ holds no page");
    let mut pages: BTreeMap<PathBuf, Page> = BTreeMap::new();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Page { links, anchors } = Page::read(&root.join(file));
        // Kept for the links into this page; its own links are checked here, once.
        pages.entry(file.clone()).or_insert(Page {
            links: Vec::new(),
            anchors,
        });
        for link in &links {
            checked += 1;
            if let Some(why) = check_link(&root, file, link, &mut pages) {
                broken.push(format!(
                    "{}:{}: ({}) {why}",
                    file.display(),
                    link.line,
                    link.destination
                ));
            }
        }
    }
    assert!(
        checked > 0,
        "no links found at all: is the parser reading the files?"
    );
    assert!(
        broken.is_empty(),
        "{} broken link(s) of {checked}:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_readme_links_to_every_page_of_docs() {
    let root = repo_root();
    let readme = Path::new("README.md");
    let linked: BTreeSet<PathBuf> = Page::read(&root.join(readme))
        .links
        .iter()
        .filter(|link| !is_external(&link.destination))
        .filter_map(|link| {
            let path = link.destination.split('#').next().unwrap_or_default();
            resolve(&root, readme, path).ok()
        })
        .collect();
    let unlinked: Vec<String> = docs_pages(&root)
        .into_iter()
        .filter(|page| !linked.contains(page))
        .map(|page| page.display().to_string())
        .collect();
    assert!(
        unlinked.is_empty(),
        "README.md links to none of: {}",
        unlinked.join(", ")
    );
}

#[test]
fn the_readme_stays_under_300_lines() {
    let readme = fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines < README_MAX_LINES,
        "README.md has {lines} lines, fewer than {README_MAX_LINES} wanted: move the detail to a page of docs/"
    );
}

#[test]
fn headings_are_slugged_as_github_slugs_them() {
    assert_eq!(
        slug("The audit trail: an event store"),
        "the-audit-trail-an-event-store"
    );
    assert_eq!(slug("Read models (CQRS)"), "read-models-cqrs");
    assert_eq!(
        slug("Concurrency, against the account's quota"),
        "concurrency-against-the-accounts-quota"
    );
    assert_eq!(
        slug("snake_case and kebab-case"),
        "snake_case-and-kebab-case"
    );
    let page = Page::parse(
        "# What `make bench` measures\n\n## Usage\n\n## Usage\n\n```\n# not a heading\n```\n",
    );
    let anchors: Vec<&str> = page.anchors.iter().map(String::as_str).collect();
    assert_eq!(anchors, ["usage", "usage-1", "what-make-bench-measures"]);
}

#[test]
fn a_broken_link_or_anchor_is_found() {
    let root = repo_root();
    let mut pages = BTreeMap::new();
    let from = Path::new("docs/saga.md");
    let check = |destination: &str, pages: &mut BTreeMap<PathBuf, Page>| {
        let link = Link {
            destination: destination.to_owned(),
            line: 1,
        };
        check_link(&root, from, &link, pages)
    };
    assert_eq!(check("redrive.md", &mut pages), None);
    assert_eq!(check("../README.md#try-it", &mut pages), None);
    assert_eq!(
        check("../shared/domain/src/saga.rs#L1-L5", &mut pages),
        None
    );
    assert_eq!(check("https://example.com/nowhere", &mut pages), None);
    for broken in [
        "no-such-page.md",
        "redrive.md#no-such-heading",
        "../README.md#Try-it",
        "#no-such-heading",
        "../../outside.md",
        "../shared/domain/src/saga.rs#main",
    ] {
        assert!(
            check(broken, &mut pages).is_some(),
            "{broken} passes for a link that resolves"
        );
    }
}
