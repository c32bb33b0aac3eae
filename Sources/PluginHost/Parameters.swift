import CPolyhead
import Foundation

/// How the host fills a parameter before training (PH_INIT_*).
public enum ParameterInitializer: Equatable, Sendable {
    case zeros
    case ones
    case constant(Double)
    case normal(mean: Double, standardDeviation: Double)
    case uniform(low: Double, high: Double)
    case fanInUniform
    case xavierUniform

    init?(code: Int32, a: Double, b: Double) {
        switch code {
        case PH_INIT_ZEROS: self = .zeros
        case PH_INIT_ONES: self = .ones
        case PH_INIT_CONSTANT: self = .constant(a)
        case PH_INIT_NORMAL: self = .normal(mean: a, standardDeviation: b)
        case PH_INIT_UNIFORM: self = .uniform(low: a, high: b)
        case PH_INIT_FAN_IN_UNIFORM: self = .fanInUniform
        case PH_INIT_XAVIER_UNIFORM: self = .xavierUniform
        default: return nil
        }
    }

    public var text: String {
        switch self {
        case .zeros: return "zeros"
        case .ones: return "ones"
        case .constant(let value): return "constant(\(value))"
        case .normal(let mean, let deviation): return "normal(\(mean), \(deviation))"
        case .uniform(let low, let high): return "uniform(\(low), \(high))"
        case .fanInUniform: return "fan_in_uniform"
        case .xavierUniform: return "xavier_uniform"
        }
    }
}

/// One declared parameter and where it lives in its instance's block.
public struct ParameterInfo: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let trainable: Bool
    /// Excluded from weight decay.
    public let noDecay: Bool
    public let initializer: ParameterInitializer
    /// First element in ParameterBlock.values / gradients.
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// All parameters of one instance in one allocation, gradients mirrored in a second, so
/// zeroing gradients is one memset and an optimizer can walk the block in one loop.
/// Host-owned; the plugin holds views into it from bind_parameters until destroy.
public final class ParameterBlock: @unchecked Sendable {
    public let parameters: [ParameterInfo]
    public let values: UnsafeMutableBufferPointer<Float>
    public let gradients: UnsafeMutableBufferPointer<Float>

    init(parameters: [ParameterInfo]) {
        self.parameters = parameters
        let total = parameters.reduce(0) { $0 + $1.count }
        values = .allocate(capacity: max(total, 1))
        gradients = .allocate(capacity: max(total, 1))
        values.initialize(repeating: 0)
        gradients.initialize(repeating: 0)
    }

    deinit {
        values.deallocate()
        gradients.deallocate()
    }

    public var count: Int { parameters.reduce(0) { $0 + $1.count } }

    public func info(named name: String) -> ParameterInfo? { parameters.first { $0.name == name } }

    /// The values of one parameter (a view into the block).
    public func values(of parameter: ParameterInfo) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: values[parameter.offset..<(parameter.offset + parameter.count)])
    }

    public func gradients(of parameter: ParameterInfo) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: gradients[parameter.offset..<(parameter.offset + parameter.count)])
    }

    public func zeroGradients() {
        gradients.update(repeating: 0)
    }

    /// Fills every parameter from its initialiser, drawing from `random` in declaration order.
    func initialize(random: RandomStream) {
        for parameter in parameters {
            let target = values(of: parameter)
            let fanIn = Double(parameter.shape.last ?? 1)
            let fanOut = Double(parameter.shape.count > 1 ? parameter.shape[parameter.shape.count - 2] : 1)
            func uniform(_ low: Double, _ high: Double) {
                for index in target.indices { target[index] = Float(low + (high - low) * Double(random.uniform())) }
            }
            switch parameter.initializer {
            case .zeros: target.update(repeating: 0)
            case .ones: target.update(repeating: 1)
            case .constant(let value): target.update(repeating: Float(value))
            case .normal(let mean, let deviation):
                for index in target.indices { target[index] = Float(mean + deviation * Double(random.normal())) }
            case .uniform(let low, let high): uniform(low, high)
            case .fanInUniform: let bound = 1 / fanIn.squareRoot(); uniform(-bound, bound)
            case .xavierUniform: let bound = (6 / (fanIn + fanOut)).squareRoot(); uniform(-bound, bound)
            }
        }
    }
}

/// Collects declarations during create(); behind the opaque ph_parameter_declarer.
final class ParameterDeclarer {
    var parameters: [ParameterInfo] = []
    private var total = 0

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    func declare(_ spec: ph_parameter_spec) -> (ph_status, String?) {
        guard spec.size >= UInt32(MemoryLayout<ph_parameter_spec>.size) else {
            return (PH_STATUS_INVALID_ARGUMENT, "ph_parameter_spec.size is \(spec.size) but ABI 1.0 needs \(MemoryLayout<ph_parameter_spec>.size)")
        }
        guard let namePointer = spec.name else { return (PH_STATUS_INVALID_ARGUMENT, "a parameter was declared with a NULL name") }
        let name = String(cString: namePointer)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
        guard !name.isEmpty, name.count <= 200, name.allSatisfy({ allowed.contains($0) }) else {
            return (PH_STATUS_INVALID_ARGUMENT, "parameter name \"\(name)\" must be 1 to 200 of A-Z a-z 0-9 _ .")
        }
        guard !parameters.contains(where: { $0.name == name }) else {
            return (PH_STATUS_INVALID_ARGUMENT, "parameter \"\(name)\" is declared twice")
        }
        guard spec.ndim >= 1, spec.ndim <= PH_MAX_DIMS else {
            return (PH_STATUS_INVALID_ARGUMENT, "parameter \"\(name)\" has \(spec.ndim) dimensions (1 to \(PH_MAX_DIMS) allowed)")
        }
        let shape = withUnsafeBytes(of: spec.shape) { Array($0.bindMemory(to: Int64.self).prefix(Int(spec.ndim))) }
        guard shape.allSatisfy({ $0 >= 1 && $0 <= 1 << 31 }) else {
            return (PH_STATUS_INVALID_ARGUMENT, "parameter \"\(name)\" has shape \(shape); every dimension must be at least 1")
        }
        let count = shape.reduce(Int64(1)) { $0.multipliedReportingOverflow(by: $1).partialValue }
        guard count <= 1 << 31 else {
            return (PH_STATUS_INVALID_ARGUMENT, "parameter \"\(name)\" has \(count) elements, more than 2^31")
        }
        guard let initializer = ParameterInitializer(code: spec.initializer, a: spec.a, b: spec.b) else {
            return (PH_STATUS_INVALID_ARGUMENT, "parameter \"\(name)\" has unknown initializer \(spec.initializer) (PH_INIT_ZEROS ... PH_INIT_XAVIER_UNIFORM)")
        }
        guard spec.flags & ~(PH_PARAMETER_TRAINABLE | PH_PARAMETER_NO_DECAY) == 0 else {
            return (PH_STATUS_INVALID_ARGUMENT, "parameter \"\(name)\" has unknown flags \(spec.flags)")
        }
        parameters.append(ParameterInfo(name: name, shape: shape.map { Int($0) },
                                        trainable: spec.flags & PH_PARAMETER_TRAINABLE != 0,
                                        noDecay: spec.flags & PH_PARAMETER_NO_DECAY != 0,
                                        initializer: initializer, offset: total))
        total += Int(count)
        return (PH_STATUS_OK, nil)
    }
}

let declareParameter: @convention(c) (OpaquePointer?, UnsafePointer<ph_parameter_spec>?, UnsafeMutablePointer<ph_error_sink>?) -> ph_status = { declarer, spec, errors in
    func fail(_ message: String) -> ph_status {
        if let errors, let report = errors.pointee.report { report(errors, PH_STATUS_INVALID_ARGUMENT, message) }
        return PH_STATUS_INVALID_ARGUMENT
    }
    guard let declarer, let spec else { return fail("declare_parameter needs the declarer from create_args and a spec") }
    let collector = Unmanaged<ParameterDeclarer>.fromOpaque(UnsafeRawPointer(declarer)).takeUnretainedValue()
    let (status, message) = collector.declare(spec.pointee)
    return status == PH_STATUS_OK ? status : fail(message ?? "invalid parameter")
}
