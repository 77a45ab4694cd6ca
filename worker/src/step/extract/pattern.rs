//! Lake Formation style table patterns: `database/schema/table`, `%` matching any characters.

use regex::Regex;

/// A compiled `database/schema/table` pattern.
#[derive(Debug, Clone)]
pub struct TablePattern {
    text: String,
    parts: [Regex; 3],
}

impl TablePattern {
    /// Parses `db/schema/table`; each part is literal text with `%` wildcards.
    pub fn parse(text: &str) -> Result<TablePattern, String> {
        let pieces: Vec<&str> = text.split('/').collect();
        let [db, schema, table] = pieces.as_slice() else {
            return Err(format!(
                "table pattern {text:?} must have three parts, database/schema/table (use % as a wildcard)"
            ));
        };
        let compile = |p: &str| {
            let body = p
                .split('%')
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(".*");
            Regex::new(&format!("^{body}$")).map_err(|e| format!("table pattern {text:?}: {e}"))
        };
        Ok(TablePattern {
            text: text.to_string(),
            parts: [compile(db)?, compile(schema)?, compile(table)?],
        })
    }

    /// Whether the table matches.
    pub fn matches(&self, database: &str, schema: &str, table: &str) -> bool {
        self.parts[0].is_match(database)
            && self.parts[1].is_match(schema)
            && self.parts[2].is_match(table)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Tables matching any of `include` and none of `exclude`, in the input order.
pub fn select<'a>(
    tables: &'a [(String, String, String)],
    include: &[TablePattern],
    exclude: &[TablePattern],
) -> Vec<&'a (String, String, String)> {
    tables
        .iter()
        .filter(|(d, s, t)| include.iter().any(|p| p.matches(d, s, t)))
        .filter(|(d, s, t)| !exclude.iter().any(|p| p.matches(d, s, t)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(d: &str, s: &str, n: &str) -> (String, String, String) {
        (d.into(), s.into(), n.into())
    }

    #[test]
    fn percent_matches_any_characters_and_the_rest_is_literal() {
        let p = TablePattern::parse("shop/public/order%").expect("pattern");
        assert!(p.matches("shop", "public", "orders"));
        assert!(p.matches("shop", "public", "order"));
        assert!(p.matches("shop", "public", "order_items"));
        assert!(!p.matches("shop", "public", "customers"));
        assert!(!p.matches("shop", "audit", "orders"));
        // regex characters are literal
        let dot = TablePattern::parse("shop/public/a.b").expect("pattern");
        assert!(dot.matches("shop", "public", "a.b"));
        assert!(!dot.matches("shop", "public", "axb"));
    }

    #[test]
    fn include_then_exclude() {
        let tables = vec![
            t("shop", "public", "orders"),
            t("shop", "public", "customers"),
            t("shop", "public", "orders_archive"),
            t("shop", "audit", "log"),
        ];
        let inc = vec![TablePattern::parse("shop/public/%").expect("p")];
        let exc = vec![TablePattern::parse("%/%/%_archive").expect("p")];
        let got: Vec<_> = select(&tables, &inc, &exc)
            .into_iter()
            .map(|x| x.2.as_str())
            .collect();
        assert_eq!(got, vec!["orders", "customers"]);
    }

    #[test]
    fn two_part_patterns_are_refused_with_the_expected_form() {
        let e = TablePattern::parse("public/orders").expect_err("two parts");
        assert!(e.contains("database/schema/table"), "{e}");
    }
}
