using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// One node's computation, built once at load (attributes read, constant weights packed) and run many
/// times, possibly from several threads at once: implementations keep no per-run state.
/// </summary>
internal abstract class Operator
{
    /// <summary>Computes the outputs from the inputs. Missing optional inputs are null; outputs not wanted are still produced.</summary>
    public abstract void Run(OperatorCall call);
}

/// <summary>The inputs, outputs and services of one operator run.</summary>
internal readonly ref struct OperatorCall
{
    private readonly Span<Tensor?> _outputs;

    public OperatorCall(ReadOnlySpan<Tensor?> inputs, Span<Tensor?> outputs, RunContext context)
    {
        Inputs = inputs;
        _outputs = outputs;
        Context = context;
    }

    public ReadOnlySpan<Tensor?> Inputs { get; }

    public RunContext Context { get; }

    public int OutputCount => _outputs.Length;

    /// <summary>Input <paramref name="index"/>, which must be present.</summary>
    public Tensor Input(int index) => index < Inputs.Length && Inputs[index] is { } t ? t
        : throw new InvalidOperationException($"{Context.Node}: required input {index} is missing.");

    /// <summary>Input <paramref name="index"/>, or null when omitted.</summary>
    public Tensor? OptionalInput(int index) => index < Inputs.Length ? Inputs[index] : null;

    /// <summary>Allocates output <paramref name="index"/> (contents undefined: write every element).</summary>
    public Tensor Output(int index, TensorElementType type, int[] shape)
    {
        var tensor = TensorPool.Rent(type, shape);
        _outputs[index] = tensor;
        return tensor;
    }

    /// <summary>
    /// Sets output <paramref name="index"/> to <paramref name="source"/>'s elements under <paramref name="shape"/>
    /// (Reshape, Identity, Squeeze...): a view that shares the array, counted so the array outlives both.
    /// </summary>
    public void OutputView(int index, Tensor source, int[] shape) => _outputs[index] = source.View(shape);

    /// <summary>Sets output <paramref name="index"/> to a tensor the operator built itself (not pooled).</summary>
    public void OutputNew(int index, Tensor fresh) => _outputs[index] = fresh;
}

/// <summary>What every operator run may use.</summary>
internal sealed class RunContext(string node, int degreeOfParallelism)
{
    /// <summary>The node, for error messages: <c>'name' (OpType)</c>.</summary>
    public string Node { get; } = node;

    /// <summary>Threads the kernels may use.</summary>
    public int DegreeOfParallelism { get; } = degreeOfParallelism;
}

/// <summary>What an operator factory sees of its node at load time.</summary>
internal sealed class OperatorBuildContext
{
    private readonly Func<string, Tensor?> _constant;

    public OperatorBuildContext(NodeProto node, int opset, SessionOptions options, string modelSource, Func<string, Tensor?> constant, OnnxModel model)
    {
        Node = node;
        Opset = opset;
        Options = options;
        ModelSource = modelSource;
        _constant = constant;
        Model = model;
    }

    /// <summary>The model the node belongs to (to decode tensor attributes).</summary>
    public OnnxModel Model { get; }

    public NodeProto Node { get; }

    /// <summary>The opset version of the node's domain that the model imports.</summary>
    public int Opset { get; }

    public SessionOptions Options { get; }

    public string ModelSource { get; }

    public string Label => $"'{(Node.Name.Length > 0 ? Node.Name : Node.Output.FirstOrDefault() ?? "")}' ({Node.OpType})";

    /// <summary>Input <paramref name="index"/> if it is a constant (an initializer, a Constant node, or folded), else null.</summary>
    public Tensor? ConstantInput(int index) =>
        index < Node.Input.Count && Node.Input[index].Length > 0 ? _constant(Node.Input[index]) : null;

    /// <summary>
    /// Input <paramref name="index"/> as a constant that the operator keeps in its own form (packed weights):
    /// at run time it receives null for that input, and the planner drops the constant once no other node reads it.
    /// </summary>
    public Tensor? TakeConstantInput(int index)
    {
        var value = ConstantInput(index);
        if (value is not null) TakenInputs.Add(index);
        return value;
    }

    /// <summary>Inputs taken by <see cref="TakeConstantInput"/>.</summary>
    public HashSet<int> TakenInputs { get; } = [];

    public bool HasInput(int index) => index < Node.Input.Count && Node.Input[index].Length > 0;

    public AttributeProto? Attribute(string name) => Node.Attribute.FirstOrDefault(a => a.Name == name);

    public long Int(string name, long fallback) => Attribute(name) is { } a ? a.I : fallback;

    public float Float(string name, float fallback) => Attribute(name) is { } a ? a.F : fallback;

    public string String(string name, string fallback) => Attribute(name) is { } a ? a.S.ToStringUtf8() : fallback;

    public long[]? Ints(string name) => Attribute(name) is { } a ? a.Ints.ToArray() : null;

    public float[]? Floats(string name) => Attribute(name) is { } a ? a.Floats.ToArray() : null;

    /// <summary>A tensor attribute decoded into a runtime tensor.</summary>
    public Tensor? TensorAttribute(string name) =>
        Attribute(name) is { T: { } t } ? TensorPool.FromStored(Model.ReadTensor(t)) : null;

    /// <summary>The error for a node we cannot run as written.</summary>
    public UnsupportedModelException Unsupported(string why) =>
        new(ModelSource, $"node {Label} cannot be run: {why}.");
}
