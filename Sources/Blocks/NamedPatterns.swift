// The block patterns the benchmark and the pattern sweep compare, by name, for any depth.
// The seed's hybrids are 12 T + 8 M of 20 layers (early T, late M) and T M alternating;
// "mostly-M" follows Waleffe et al. 2024, whose best hybrid kept about 8% attention layers,
// evenly spaced.

public enum NamedPattern: String, CaseIterable, Sendable {
    case allT = "all-T"
    case allM = "all-M"
    /// round(0.6 · depth) Transformer layers, then Mamba (the seed's 12 + 8 of 20).
    case earlyT = "early-T"
    /// T M T M ... (the seed's ["T", "M"] * 10).
    case alternating
    /// Mamba with max(1, round(depth / 12)) Transformer layers evenly spaced (the middle of
    /// each of that many equal spans): 1 of 4 to 1 of 17, 2 of 18 to 29, ...
    case mostlyM = "mostly-M"

    public func pattern(depth: Int) -> [BlockKind] {
        switch self {
        case .allT: return Array(repeating: .transformer, count: depth)
        case .allM: return Array(repeating: .mamba, count: depth)
        case .earlyT:
            let t = Int((0.6 * Double(depth)).rounded())
            return Array(repeating: .transformer, count: t) + Array(repeating: .mamba, count: depth - t)
        case .alternating: return (0..<depth).map { $0 % 2 == 0 ? .transformer : .mamba }
        case .mostlyM:
            let k = max(1, Int((Double(depth) / 12).rounded()))
            var p = Array(repeating: BlockKind.mamba, count: depth)
            for i in 0..<k { p[min(depth - 1, (2 * i + 1) * depth / (2 * k))] = .transformer }
            return p
        }
    }

    /// A named pattern, or a literal one ("TTMM", any case) whose length must be `depth`.
    public static func parse(_ text: String, depth: Int) throws -> [BlockKind] {
        if let named = NamedPattern(rawValue: text) { return named.pattern(depth: depth) }
        let letters = text.map { String($0) }
        let kinds = try ModelConfig.parsePattern(letters)
        guard kinds.count == depth else {
            throw ModelConfigError(key: "block_pattern", "pattern \(text) has \(kinds.count) layers, the depth is \(depth); give a name (\(allCases.map(\.rawValue).joined(separator: ", "))) or one letter per layer")
        }
        return kinds
    }
}
