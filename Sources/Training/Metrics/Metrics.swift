import Foundation

/// The metric functions, over plain arrays. They match scikit-learn and SciPy (tested
/// against fixtures written by scripts/reference/metrics_fixtures.py), with one deliberate
/// difference: a correlation that is undefined because one side is constant is 0 here,
/// not NaN, so that an overall average and early stopping stay usable.
/// Empty inputs give 0 for every metric.
public enum Metrics {
    // MARK: Single-label classification (class indices)

    /// Fraction of positions where the prediction equals the gold class.
    public static func accuracy(gold: [Int], predicted: [Int]) -> Double {
        precondition(gold.count == predicted.count, "gold and predictions differ in length")
        guard !gold.isEmpty else { return 0 }
        return Double(zip(gold, predicted).filter { $0 == $1 }.count) / Double(gold.count)
    }

    /// Per-class F1 = 2tp / (2tp + fp + fn), averaged over the classes that occur in the
    /// gold labels or the predictions (scikit-learn's `f1_score(average="macro")`).
    public static func macroF1(gold: [Int], predicted: [Int]) -> Double {
        precondition(gold.count == predicted.count, "gold and predictions differ in length")
        var truePositives: [Int: Int] = [:], falsePositives: [Int: Int] = [:], falseNegatives: [Int: Int] = [:]
        for (goldClass, predictedClass) in zip(gold, predicted) {
            if goldClass == predictedClass {
                truePositives[goldClass, default: 0] += 1
            } else {
                falsePositives[predictedClass, default: 0] += 1
                falseNegatives[goldClass, default: 0] += 1
            }
        }
        let classes = Set(gold).union(predicted)
        guard !classes.isEmpty else { return 0 }
        // In class order: a Set's order changes from process to process, and with it the
        // last bits of a floating-point sum.
        let total = classes.sorted().reduce(0.0) { sum, label in
            sum + f1(truePositives: truePositives[label] ?? 0, falsePositives: falsePositives[label] ?? 0, falseNegatives: falseNegatives[label] ?? 0)
        }
        return total / Double(classes.count)
    }

    /// F1 of the counts pooled over classes; for one label per example it equals accuracy.
    public static func microF1(gold: [Int], predicted: [Int]) -> Double {
        accuracy(gold: gold, predicted: predicted)
    }

    /// Matthews correlation coefficient in its multiclass form (Gorodkin's R_K, as
    /// scikit-learn's `matthews_corrcoef`): (c*s - sum_k p_k*t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)),
    /// with c correct, s samples, t_k and p_k the gold and predicted counts of class k.
    /// 0 when the denominator is 0 (a constant prediction or a single gold class).
    public static func matthewsCorrelation(gold: [Int], predicted: [Int]) -> Double {
        precondition(gold.count == predicted.count, "gold and predictions differ in length")
        var goldCounts: [Int: Double] = [:], predictedCounts: [Int: Double] = [:]
        var correct = 0.0
        for (goldClass, predictedClass) in zip(gold, predicted) {
            goldCounts[goldClass, default: 0] += 1
            predictedCounts[predictedClass, default: 0] += 1
            if goldClass == predictedClass { correct += 1 }
        }
        let samples = Double(gold.count)
        let crossTerm = goldCounts.reduce(0.0) { $0 + $1.value * (predictedCounts[$1.key] ?? 0) }
        let predictedSquares = predictedCounts.values.reduce(0.0) { $0 + $1 * $1 }
        let goldSquares = goldCounts.values.reduce(0.0) { $0 + $1 * $1 }
        let denominator = (samples * samples - predictedSquares) * (samples * samples - goldSquares)
        guard denominator > 0 else { return 0 }
        return (correct * samples - crossTerm) / denominator.squareRoot()
    }

    // MARK: Multi-label classification (sets of class indices)

    /// Fraction of examples whose predicted set equals the gold set exactly.
    public static func subsetAccuracy(gold: [[Int]], predicted: [[Int]]) -> Double {
        precondition(gold.count == predicted.count, "gold and predictions differ in length")
        guard !gold.isEmpty else { return 0 }
        return Double(zip(gold, predicted).filter { Set($0) == Set($1) }.count) / Double(gold.count)
    }

    /// Per (example, class) decisions pooled: 2TP / (2TP + FP + FN).
    public static func multiLabelMicroF1(gold: [[Int]], predicted: [[Int]]) -> Double {
        let counts = multiLabelCounts(gold: gold, predicted: predicted)
        let sum = counts.values.reduce((0, 0, 0)) { ($0.0 + $1.truePositives, $0.1 + $1.falsePositives, $0.2 + $1.falseNegatives) }
        return f1(truePositives: sum.0, falsePositives: sum.1, falseNegatives: sum.2)
    }

    /// Per-class F1 averaged over the classes that occur in the gold or predicted sets.
    public static func multiLabelMacroF1(gold: [[Int]], predicted: [[Int]]) -> Double {
        let counts = multiLabelCounts(gold: gold, predicted: predicted)
        guard !counts.isEmpty else { return 0 }
        return counts.sorted { $0.key < $1.key }.reduce(0.0) { $0 + f1(truePositives: $1.value.truePositives, falsePositives: $1.value.falsePositives, falseNegatives: $1.value.falseNegatives) }
            / Double(counts.count)
    }

    struct ClassCounts {
        var truePositives = 0, falsePositives = 0, falseNegatives = 0
    }

    static func multiLabelCounts(gold: [[Int]], predicted: [[Int]]) -> [Int: ClassCounts] {
        precondition(gold.count == predicted.count, "gold and predictions differ in length")
        var counts: [Int: ClassCounts] = [:]
        for (goldSet, predictedSet) in zip(gold.map(Set.init), predicted.map(Set.init)) {
            for label in goldSet.intersection(predictedSet) { counts[label, default: ClassCounts()].truePositives += 1 }
            for label in predictedSet.subtracting(goldSet) { counts[label, default: ClassCounts()].falsePositives += 1 }
            for label in goldSet.subtracting(predictedSet) { counts[label, default: ClassCounts()].falseNegatives += 1 }
        }
        return counts
    }

    static func f1(truePositives: Int, falsePositives: Int, falseNegatives: Int) -> Double {
        let denominator = 2 * truePositives + falsePositives + falseNegatives
        return denominator == 0 ? 0 : Double(2 * truePositives) / Double(denominator)
    }

    // MARK: Regression

    /// Pearson's r; 0 when either side is constant (undefined).
    public static func pearson(_ first: [Double], _ second: [Double]) -> Double {
        precondition(first.count == second.count, "the two samples differ in length")
        guard first.count >= 2 else { return 0 }
        let count = Double(first.count)
        let firstMean = first.reduce(0, +) / count
        let secondMean = second.reduce(0, +) / count
        var covariance = 0.0, firstVariance = 0.0, secondVariance = 0.0
        for (x, y) in zip(first, second) {
            let dx = x - firstMean, dy = y - secondMean
            covariance += dx * dy
            firstVariance += dx * dx
            secondVariance += dy * dy
        }
        guard firstVariance > 0, secondVariance > 0 else { return 0 }
        // Clamped like SciPy: rounding can push |r| a hair past 1.
        return max(-1, min(1, covariance / (firstVariance.squareRoot() * secondVariance.squareRoot())))
    }

    /// Spearman's rho: Pearson's r of the ranks, tied values sharing their average rank.
    public static func spearman(_ first: [Double], _ second: [Double]) -> Double {
        pearson(averageRanks(first), averageRanks(second))
    }

    /// 1-based ranks, ties given the mean of the ranks they span (SciPy's `rankdata`).
    public static func averageRanks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count, values[order[end + 1]] == values[order[start]] { end += 1 }
            let rank = Double(start + end) / 2 + 1
            for position in start...end { ranks[order[position]] = rank }
            start = end + 1
        }
        return ranks
    }

    public static func meanSquaredError(gold: [Double], predicted: [Double]) -> Double {
        precondition(gold.count == predicted.count, "gold and predictions differ in length")
        guard !gold.isEmpty else { return 0 }
        return zip(gold, predicted).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Double(gold.count)
    }

    public static func meanAbsoluteError(gold: [Double], predicted: [Double]) -> Double {
        precondition(gold.count == predicted.count, "gold and predictions differ in length")
        guard !gold.isEmpty else { return 0 }
        return zip(gold, predicted).reduce(0.0) { $0 + abs($1.0 - $1.1) } / Double(gold.count)
    }

    // MARK: Token classification (tags per word)

    /// Micro F1 over words, counting every tag except `outside`: a word is a true positive
    /// when gold and prediction agree on a non-outside tag (scikit-learn's micro F1 with the
    /// outside tag left out of `labels`). With no outside tag it equals word accuracy.
    public static func tokenF1(gold: [[String]], predicted: [[String]], outside: String? = "O") -> Double {
        var truePositives = 0, falsePositives = 0, falseNegatives = 0
        for (goldTags, predictedTags) in zip(gold, predicted) {
            precondition(goldTags.count == predictedTags.count, "a sentence's gold and predicted tags differ in length")
            for (goldTag, predictedTag) in zip(goldTags, predictedTags) {
                if goldTag == predictedTag {
                    if goldTag != outside { truePositives += 1 }
                } else {
                    if predictedTag != outside { falsePositives += 1 }
                    if goldTag != outside { falseNegatives += 1 }
                }
            }
        }
        return f1(truePositives: truePositives, falsePositives: falsePositives, falseNegatives: falseNegatives)
    }

    /// Entity-level F1: an entity counts as correct when its type, start and end all match
    /// (seqeval's default micro F1). Entities never cross sentences.
    public static func entityF1(gold: [[String]], predicted: [[String]], scheme: TagScheme, outside: String? = "O") -> Double {
        precondition(gold.count == predicted.count, "gold and predictions differ in sentence count")
        var correct = 0, goldCount = 0, predictedCount = 0
        for (goldTags, predictedTags) in zip(gold, predicted) {
            precondition(goldTags.count == predictedTags.count, "a sentence's gold and predicted tags differ in length")
            let goldEntities = Set(entities(goldTags, scheme: scheme, outside: outside))
            let predictedEntities = Set(entities(predictedTags, scheme: scheme, outside: outside))
            correct += goldEntities.intersection(predictedEntities).count
            goldCount += goldEntities.count
            predictedCount += predictedEntities.count
        }
        return f1(truePositives: correct, falsePositives: predictedCount - correct, falseNegatives: goldCount - correct)
    }

    /// A labelled span of words, end exclusive.
    public struct Entity: Hashable, Sendable {
        public var type: String
        public var start: Int
        public var end: Int
    }

    /// How tags form entities.
    public enum TagScheme: Sendable, Equatable {
        /// BIO / IOB2: "B-X" starts an entity of type X, "I-X" continues one of type X; an
        /// "I-X" that does not continue an X entity starts one (conlleval and seqeval's
        /// default behaviour).
        case bio
        /// Plain tags ("noun.animal"): each maximal run of one non-outside tag is an entity.
        case plain

        /// BIO when every tag other than the outside tag starts with "B-" or "I-"; plain
        /// otherwise (so a label set like WordNet's supersenses is read as plain tags).
        public static func detect(labelNames: [String], outside: String? = "O") -> TagScheme {
            let tags = labelNames.filter { $0 != outside }
            guard !tags.isEmpty else { return .plain }
            return tags.allSatisfy { $0.hasPrefix("B-") || $0.hasPrefix("I-") } ? .bio : .plain
        }
    }

    /// The entities in one sentence's tags.
    public static func entities(_ tags: [String], scheme: TagScheme, outside: String? = "O") -> [Entity] {
        var found: [Entity] = []
        var current: Entity?
        func close() {
            if let entity = current { found.append(entity) }
            current = nil
        }
        for (position, tag) in tags.enumerated() {
            if tag == outside {
                close()
                continue
            }
            let type: String
            var continues: Bool
            switch scheme {
            case .plain:
                type = tag
                continues = true
            case .bio:
                if tag.hasPrefix("B-") {
                    type = String(tag.dropFirst(2))
                    continues = false
                } else if tag.hasPrefix("I-") {
                    type = String(tag.dropFirst(2))
                    continues = true
                } else {
                    // A stray tag in a BIO sequence stands alone.
                    type = tag
                    continues = false
                }
            }
            if continues, let open = current, open.type == type, open.end == position {
                current?.end = position + 1
            } else {
                close()
                current = Entity(type: type, start: position, end: position + 1)
            }
        }
        close()
        return found
    }
}
