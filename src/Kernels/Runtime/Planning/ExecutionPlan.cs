using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>One node of the plan: its operator and where its inputs and outputs live.</summary>
internal sealed class PlannedNode(Operator op, int[] inputs, int[] outputs, string label, int[] releaseAfter)
{
    public Operator Operator { get; } = op;

    /// <summary>Value slots of the inputs; -1 for an omitted optional input.</summary>
    public int[] Inputs { get; } = inputs;

    /// <summary>Value slots of the outputs; -1 for an output nobody reads.</summary>
    public int[] Outputs { get; } = outputs;

    /// <summary>'name' (OpType), for errors.</summary>
    public string Label { get; } = label;

    /// <summary>Slots whose last reader is this node: released right after it runs, so their arrays can be reused.</summary>
    public int[] ReleaseAfter { get; } = releaseAfter;
}

/// <summary>
/// A model planned once at load: operators in topological order, values numbered into slots, constants
/// (initializers and folded nodes) in place, and for every node the values it is the last to read.
/// Immutable, so any number of runs can share it.
/// </summary>
internal sealed class ExecutionPlan(
    string source,
    string[] slotNames,
    Tensor?[] constants,
    PlannedNode[] nodes,
    (ValueInfo Info, int Slot)[] inputs,
    (ValueInfo Info, int Slot)[] outputs)
{
    public string Source { get; } = source;

    public string[] SlotNames { get; } = slotNames;

    /// <summary>Per slot, its constant value, or null.</summary>
    public Tensor?[] Constants { get; } = constants;

    public PlannedNode[] Nodes { get; } = nodes;

    public (ValueInfo Info, int Slot)[] Inputs { get; } = inputs;

    public (ValueInfo Info, int Slot)[] Outputs { get; } = outputs;
}
