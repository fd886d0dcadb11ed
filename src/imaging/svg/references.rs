//! Circular references in an SVG document, refused before usvg reads it.
//!
//! usvg converts what a drawing refers to by recursion: a pattern named by a paint (`fill`,
//! `stroke`), a mask, clip path, filter or marker, a pattern's `href` chain. A document whose
//! references lead back to where they started made it recurse until the stack overflowed,
//! which aborts the process (no `catch_unwind` stops it), or loop for ever: a pattern whose
//! content inherits `fill="url(#p)"` naming that pattern (fuzz finding 14), patterns naming
//! each other three deep, a pattern drawing a mask that paints with the pattern, two patterns
//! whose `href`s name each other. usvg breaks some of these itself (a pattern's own
//! descendants naming it by attribute, two links deep), not all.
//!
//! The check follows references as usvg resolves them: a property is declared by its
//! attribute, a matching rule of the document's style sheets, or the `style` attribute, and
//! `fill`, `stroke` and the markers are inherited from the element's ancestors (from the `use`
//! that draws it, for a `use`'s target). Where sources disagree all their values count, so it
//! may see a reference usvg would not follow, never miss one. Any cycle is refused (`422`):
//! the SVG specification makes a circular reference an error, and browsers draw nothing for
//! it.

use super::super::error::ImageError;
use roxmltree::{Document, Node, NodeId};
use std::collections::HashMap;

/// Element visits the check may make (a `use` is walked once per use), then `413`.
const MAX_VISITS: u32 = 1_000_000;

/// Deepest nesting followed, elements and `use`s together: usvg refuses a document nested
/// deeper than this anyway, and the walk must not run out of stack first.
const MAX_DEPTH: u32 = 1024;

/// Properties whose references an element passes to its descendants: `fill`, `stroke`,
/// `marker-start`, `marker-mid`, `marker-end`.
const INHERITED: [&str; 5] = ["fill", "stroke", "marker-start", "marker-mid", "marker-end"];

/// Properties that refer to something for the element alone.
const OWN: [&str; 3] = ["mask", "clip-path", "filter"];

/// Elements whose children are drawn only when something refers to them (never the element
/// itself), and what counts in their content: a clip path's shapes are drawn without their
/// paint (usvg paints them black), a filter's primitives refer only by `feImage`, and a
/// gradient's stops refer to nothing (a gradient refers only by its `href` chain).
const CONTAINERS: [(&str, Counts); 8] = [
    ("pattern", Counts::All),
    ("mask", Counts::All),
    ("marker", Counts::All),
    ("symbol", Counts::All),
    ("clipPath", Counts::NoPaint),
    ("filter", Counts::Links),
    ("linearGradient", Counts::Nothing),
    ("radialGradient", Counts::Nothing),
];

/// Which references of drawn content count.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// Every property, `use` and `feImage`.
    All,
    /// All but `fill` and `stroke`.
    NoPaint,
    /// `use` and `feImage` only.
    Links,
    /// None: the content is not walked.
    Nothing,
}

/// Refuses a document in which something refers, directly or through others, to itself.
pub(super) fn check(doc: &Document) -> Result<(), ImageError> {
    let mut refs = References::new(doc);
    // Every element referred to anywhere in the document (the walk of the whole document sees
    // the content of every resource too) is a place a cycle could start.
    let root = doc.root_element();
    let starts = refs.of(root, true, Counts::All)?;
    let mut state: HashMap<NodeId, Visit> = HashMap::new();
    for start in starts {
        refs.search(start, &mut state)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    Open,
    Done,
}

/// What each element declares, and the references of each resource, found once.
struct References<'a, 'input> {
    ids: HashMap<&'a str, Vec<Node<'a, 'input>>>,
    sheet: simplecss::StyleSheet<'a>,
    declared: HashMap<NodeId, Declared<'a>>,
    found: HashMap<NodeId, Vec<Node<'a, 'input>>>,
    visits: u32,
}

/// An element's own declarations of the properties that refer: for each inherited property
/// the ids its values name (`None`: not declared, inherited whole) and whether one of its
/// values is `inherit`; the ids of the others.
#[derive(Default, Clone)]
struct Declared<'a> {
    inherited: [Option<(Vec<&'a str>, bool)>; 5],
    own: Vec<&'a str>,
}

/// The ids an element's inherited properties name, once inheritance is resolved.
type Context<'a> = [Vec<&'a str>; 5];

impl<'a, 'input> References<'a, 'input> {
    fn new(doc: &'a Document<'input>) -> Self {
        let mut ids: HashMap<&str, Vec<Node>> = HashMap::new();
        // An `id` in any namespace: usvg takes `id`, `svg:id` and `xml:id` alike.
        for node in doc.descendants().filter(Node::is_element) {
            for a in node.attributes().filter(|a| a.name() == "id") {
                ids.entry(a.value()).or_default().push(node);
            }
        }
        // The style sheets usvg reads: `<style>` elements of no type or `text/css`.
        let mut sheet = simplecss::StyleSheet::new();
        for style in doc.descendants().filter(|n| n.has_tag_name("style")) {
            if matches!(style.attribute("type"), None | Some("text/css")) {
                if let Some(text) = style.text() {
                    sheet.parse_more(text);
                }
            }
        }
        References {
            ids,
            sheet,
            declared: HashMap::new(),
            found: HashMap::new(),
            visits: 0,
        }
    }

    /// Depth-first search from `node` for a path back to an element still open.
    fn search(
        &mut self,
        node: Node<'a, 'input>,
        state: &mut HashMap<NodeId, Visit>,
    ) -> Result<(), ImageError> {
        // An explicit stack: a chain of references may be as long as the document.
        if state.contains_key(&node.id()) {
            return Ok(());
        }
        state.insert(node.id(), Visit::Open);
        let mut stack = vec![(node, self.resource(node)?, 0usize)];
        while let Some((at, targets, next)) = stack.last_mut() {
            let Some(&target) = targets.get(*next) else {
                state.insert(at.id(), Visit::Done);
                stack.pop();
                continue;
            };
            *next += 1;
            match state.get(&target.id()) {
                Some(Visit::Done) => {}
                Some(Visit::Open) => return Err(circular(target)),
                None => {
                    state.insert(target.id(), Visit::Open);
                    let targets = self.resource(target)?;
                    stack.push((target, targets, 0));
                }
            }
        }
        Ok(())
    }

    /// What drawing `node`, as something referred to, refers to: for a container its content's
    /// references (a pattern's content may come through its `href` chain) and the element its
    /// own `href` names; for anything else (the target of an `feImage`), its own and its
    /// descendants'.
    fn resource(&mut self, node: Node<'a, 'input>) -> Result<Vec<Node<'a, 'input>>, ImageError> {
        if let Some(found) = self.found.get(&node.id()) {
            return Ok(found.clone());
        }
        let tag = node.tag_name().name();
        let container = CONTAINERS.iter().find(|(name, _)| *name == tag);
        let mut targets = match container {
            None => self.of(node, true, Counts::All)?,
            Some((_, Counts::Nothing)) => Vec::new(),
            Some(&(_, counts)) => self.of(node, false, counts)?,
        };
        if container.is_some() {
            // An `href` to itself usvg ignores (a chain through others it may follow for
            // ever).
            if let Some(link) = href(node) {
                targets.extend(self.lookup(link).into_iter().filter(|&t| t != node));
            }
        }
        self.found.insert(node.id(), targets.clone());
        Ok(targets)
    }

    /// The references of `node`'s descendants (and its own when `itself`), with the
    /// inheritance its ancestors give it.
    fn of(
        &mut self,
        node: Node<'a, 'input>,
        itself: bool,
        counts: Counts,
    ) -> Result<Vec<Node<'a, 'input>>, ImageError> {
        // What the ancestors pass down, root first.
        let mut context = Context::default();
        let ancestors: Vec<_> = node.ancestors().skip(1).filter(Node::is_element).collect();
        for ancestor in ancestors.into_iter().rev() {
            context = inherit(&self.declared(ancestor), &context);
        }
        let mut ids = Vec::new();
        let mut uses = Vec::new();
        if itself {
            self.walk(node, &context, counts, &mut ids, &mut uses, 0)?;
        } else {
            let context = inherit(&self.declared(node), &context);
            for child in node.children().filter(Node::is_element) {
                self.walk(child, &context, counts, &mut ids, &mut uses, 0)?;
            }
        }
        Ok(ids.into_iter().flat_map(|id| self.lookup(id)).collect())
    }

    /// Collects into `ids` what `node` and its descendants refer to, `use` targets drawn in
    /// place with the `use`'s inheritance. `uses` holds the `use` targets being drawn: one
    /// that draws itself again is a cycle.
    fn walk(
        &mut self,
        node: Node<'a, 'input>,
        context: &Context<'a>,
        counts: Counts,
        ids: &mut Vec<&'a str>,
        uses: &mut Vec<NodeId>,
        depth: u32,
    ) -> Result<(), ImageError> {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(ImageError::TooLarge(format!(
                "SVG whose references take more than {MAX_VISITS} element visits to follow"
            )));
        }
        if depth > MAX_DEPTH {
            return Err(ImageError::Undecodable(format!(
                "SVG nested more than {MAX_DEPTH} deep"
            )));
        }
        let declared = self.declared(node);
        let context = inherit(&declared, context);
        let skip = match counts {
            Counts::All => 0,
            Counts::NoPaint => 2,
            Counts::Links | Counts::Nothing => INHERITED.len(),
        };
        for named in &context[skip..] {
            ids.extend(named.iter().copied());
        }
        if matches!(counts, Counts::All | Counts::NoPaint) {
            ids.extend(declared.own);
        }
        let tag = node.tag_name().name();
        if tag == "feImage" {
            ids.extend(href(node));
        }
        if tag == "use" {
            for target in href(node).map(|id| self.lookup(id)).unwrap_or_default() {
                let loops = uses.contains(&target.id()) || node.ancestors().any(|a| a == target);
                if loops {
                    return Err(circular(target));
                }
                uses.push(target.id());
                self.walk(target, &context, counts, ids, uses, depth + 1)?;
                uses.pop();
            }
        }
        for child in node.children().filter(Node::is_element) {
            self.walk(child, &context, counts, ids, uses, depth + 1)?;
        }
        Ok(())
    }

    /// What `node` itself declares (attribute, matching style rules, `style` attribute).
    fn declared(&mut self, node: Node<'a, 'input>) -> Declared<'a> {
        if let Some(d) = self.declared.get(&node.id()) {
            return d.clone();
        }
        let mut d = Declared::default();
        let mut add = |name: &str, value: &'a str| {
            let names: &[&str] = if name == "marker" {
                &INHERITED[2..]
            } else {
                std::slice::from_ref(&name)
            };
            for name in names {
                if let Some(i) = INHERITED.iter().position(|p| p == name) {
                    let (ids, inherits) = d.inherited[i].get_or_insert_with(Default::default);
                    ids.extend(urls(value));
                    *inherits |= value.trim() == "inherit";
                } else if OWN.contains(name) {
                    d.own.extend(urls(value));
                }
            }
        };
        // In any namespace: usvg reads `svg:fill` as `fill`.
        for a in node.attributes() {
            add(a.name(), a.value());
        }
        for rule in &self.sheet.rules {
            if rule.selector.matches(&Css(node)) {
                for declaration in &rule.declarations {
                    add(declaration.name, declaration.value);
                }
            }
        }
        if let Some(style) = node.attribute("style") {
            for declaration in simplecss::DeclarationTokenizer::from(style) {
                add(declaration.name, declaration.value);
            }
        }
        self.declared.insert(node.id(), d.clone());
        d
    }

    /// The elements with id `id` (all of them: usvg takes the first for some references and
    /// the last for others).
    fn lookup(&self, id: &str) -> Vec<Node<'a, 'input>> {
        self.ids.get(id).cloned().unwrap_or_default()
    }
}

/// The inheritance an element passes to its children: what its parent passed to it, with
/// what it `declared` itself in place (or added, for a value of `inherit`).
fn inherit<'a>(declared: &Declared<'a>, context: &Context<'a>) -> Context<'a> {
    let mut out = context.clone();
    for (i, property) in declared.inherited.iter().enumerate() {
        if let Some((named, inherits)) = property {
            if !inherits {
                out[i].clear();
            }
            out[i].extend(named.iter().copied());
        }
    }
    out
}

fn circular(at: Node) -> ImageError {
    let id = at.attribute("id").unwrap_or("");
    let id: String = id.chars().take(64).collect();
    ImageError::Undecodable(format!(
        "SVG with a circular reference (through <{} id=\"{id}\">)",
        at.tag_name().name()
    ))
}

/// The id a `href` or `xlink:href` names (`#id`).
fn href<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    node.attributes()
        .find(|a| a.name() == "href")
        .and_then(|a| a.value().split_once('#'))
        .map(|(_, id)| id.trim())
}

/// The ids the `url(...)` references in a property's value name.
fn urls(value: &str) -> impl Iterator<Item = &str> {
    value.split("url(").skip(1).filter_map(|rest| {
        let inside = &rest[..rest.find(')').unwrap_or(rest.len())];
        let inside = inside.trim().trim_matches(|c| c == '"' || c == '\'');
        inside.split_once('#').map(|(_, id)| id.trim())
    })
}

/// An element as the style sheets' selectors see it, as usvg matches them.
struct Css<'a, 'input>(Node<'a, 'input>);

impl simplecss::Element for Css<'_, '_> {
    fn parent_element(&self) -> Option<Self> {
        self.0.parent_element().map(Css)
    }

    fn prev_sibling_element(&self) -> Option<Self> {
        self.0.prev_sibling_element().map(Css)
    }

    fn has_local_name(&self, name: &str) -> bool {
        self.0.tag_name().name() == name
    }

    fn attribute_matches(&self, name: &str, operator: simplecss::AttributeOperator) -> bool {
        self.0.attribute(name).is_some_and(|v| operator.matches(v))
    }

    fn pseudo_class_matches(&self, class: simplecss::PseudoClass) -> bool {
        matches!(class, simplecss::PseudoClass::FirstChild)
            && self.0.prev_sibling_element().is_none()
    }
}
