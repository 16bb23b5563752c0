// Placeholder so the [[bench]] target resolves; issue 6 fills it in.
fn main() {}
