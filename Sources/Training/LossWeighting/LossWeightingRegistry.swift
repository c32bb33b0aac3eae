/// Loss-weighting methods by the name a config uses. A new method adds one entry to
/// `methods`: its name, the options it accepts and how to build it.
public enum LossWeightingRegistry {
    struct Method: Sendable {
        let name: String
        /// Option keys it accepts; any other key is a config error.
        let optionKeys: [String]
        let make: @Sendable (_ options: JSONObject, _ tasks: [TaskConfig]) -> any LossWeighting
    }

    static let methods: [Method] = [
        Method(name: "static", optionKeys: []) { _, tasks in
            StaticLossWeighting(weights: tasks.map { Float($0.lossWeight) })
        },
        Method(name: "uncertainty", optionKeys: ["initial_log_variance"]) { options, tasks in
            UncertaintyLossWeighting(taskNames: tasks.map(\.name),
                                     initialLogVariance: Float(options["initial_log_variance"]?.doubleValue ?? 0))
        },
    ]

    /// Every registered name.
    public static var names: [String] { methods.map(\.name) }

    /// Checks the name and the options' keys and types.
    /// - Throws: `ConfigError` at the settings' location.
    public static func validate(_ settings: LossWeightingSettings) throws {
        _ = try validatedMethod(settings)
    }

    static func validatedMethod(_ settings: LossWeightingSettings) throws -> Method {
        guard let method = methods.first(where: { $0.name == settings.name }) else {
            throw settings.location.error("unknown loss weighting '\(settings.name)'; expected one of \(names.joined(separator: ", "))",
                                          hint: NameSuggestion.didYouMean(settings.name, among: names))
        }
        for key in settings.options.keys where !method.optionKeys.contains(key) {
            let accepted = method.optionKeys.isEmpty ? "\(method.name) takes no options" : "accepted: \(method.optionKeys.joined(separator: ", "))"
            let suggestion = NameSuggestion.didYouMean(key, among: method.optionKeys)
            throw settings.location.error("unknown option '\(key)' for \(method.name) loss weighting",
                                          hint: [suggestion, accepted].compactMap { $0 }.joined(separator: " "))
        }
        if let value = settings.options["initial_log_variance"], value.doubleValue == nil {
            throw settings.location.error("options.initial_log_variance: expected a number, got \(value.jsonText)")
        }
        return method
    }

    /// Builds the configured method for the run's tasks (in task order).
    /// - Throws: `ConfigError` when the settings do not validate.
    public static func make(_ settings: LossWeightingSettings, tasks: [TaskConfig]) throws -> any LossWeighting {
        try validatedMethod(settings).make(settings.options, tasks)
    }
}
