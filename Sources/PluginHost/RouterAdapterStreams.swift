// The random streams of router and adapter instances, for the trainer to position them per
// micro-batch (gate noise, adapter dropout) so a resumed run draws what the uninterrupted run drew.

extension RouterInstance {
    /// The instance's random stream (gate noise): replace its state to replay a draw.
    public var random: RandomStream { core.random }
}

extension AdapterInstance {
    /// The instance's random stream (adapter dropout): replace its state to replay a mask.
    public var random: RandomStream { core.random }
}
