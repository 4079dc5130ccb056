using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime.Planning;

namespace Quantize.Kernels.Runtime;

/// <summary>
/// A loaded, planned ONNX model, ready to run many times: the managed counterpart of ONNX Runtime's
/// <c>InferenceSession</c> for the models Quantize.Build produces. A session may be run from several
/// threads at once; each run owns its intermediate values, and the outputs belong to the caller.
/// </summary>
public sealed class ModelSession : IDisposable
{
    private readonly ExecutionPlan _plan;
    private readonly SessionOptions _options;
    private bool _disposed;

    private ModelSession(ExecutionPlan plan, SessionOptions options)
    {
        _plan = plan;
        _options = options;
        Inputs = plan.Inputs.Select(i => i.Info).ToArray();
        Outputs = plan.Outputs.Select(o => o.Info).ToArray();
    }

    /// <summary>The inputs the caller must (or, for those with initializers, may) provide.</summary>
    public IReadOnlyList<ValueInfo> Inputs { get; }

    /// <summary>The model's outputs.</summary>
    public IReadOnlyList<ValueInfo> Outputs { get; }

    /// <summary>When set, every node's run time in milliseconds is reported with its label (diagnostics).</summary>
    internal Action<string, double>? NodeTimer { get; set; }

    /// <summary>The planned nodes' labels, in run order (for tests and diagnostics: shows fusions and folding).</summary>
    internal IEnumerable<string> PlannedNodes => _plan.Nodes.Select(n => n.Label);

    /// <summary>Loads and plans a model file.</summary>
    /// <exception cref="InvalidModelException">The file is missing, unreadable or invalid.</exception>
    /// <exception cref="UnsupportedModelException">The model uses something the runtime does not implement.</exception>
    public static ModelSession Load(string path, SessionOptions? options = null) => Create(Model.Load(path), options);

    /// <summary>Loads and plans a model from bytes (e.g. an embedded resource).</summary>
    public static ModelSession Load(ReadOnlyMemory<byte> bytes, string name, SessionOptions? options = null) => Create(Model.Load(bytes, name), options);

    /// <summary>Loads and plans a model from a stream.</summary>
    public static ModelSession Load(Stream stream, string name, SessionOptions? options = null) => Create(Model.Load(stream, name), options);

    /// <summary>Plans an already loaded model.</summary>
    public static ModelSession Create(Model model, SessionOptions? options = null)
    {
        var onnx = model as OnnxModel ?? throw new UnsupportedModelException(model.Source, "TensorFlow GraphDefs cannot be run yet; only ONNX models.");
        options ??= new SessionOptions();
        return new ModelSession(PlanBuilder.Build(onnx, options), options);
    }

    /// <summary>
    /// Runs the model. <paramref name="inputs"/> maps input names to tensors (not modified, not kept);
    /// the result maps each requested output (default: all) to a tensor the caller owns.
    /// </summary>
    /// <exception cref="ArgumentException">An input is missing, unknown, or of the wrong type or shape.</exception>
    public IReadOnlyDictionary<string, Tensor> Run(IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputNames = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(inputs);
        var values = (Tensor?[])_plan.Constants.Clone();
        foreach (var (info, slot) in _plan.Inputs)
        {
            if (inputs.TryGetValue(info.Name, out var tensor))
            {
                CheckInput(info, tensor);
                values[slot] = tensor;
            }
            else if (values[slot] is null)
            {
                throw new ArgumentException($"{_plan.Source}: input '{info.Name}' ({info}) is missing.", nameof(inputs));
            }
        }
        foreach (var name in inputs.Keys)
        {
            if (!_plan.Inputs.Any(i => i.Info.Name == name))
                throw new ArgumentException($"{_plan.Source}: the model has no input '{name}'. Its inputs: {string.Join(", ", Inputs.Select(i => i.Name))}.", nameof(inputs));
        }

        foreach (var node in _plan.Nodes)
        {
            var nodeInputs = new Tensor?[node.Inputs.Length];
            for (int i = 0; i < nodeInputs.Length; i++)
                nodeInputs[i] = node.Inputs[i] < 0 ? null : values[node.Inputs[i]];
            var nodeOutputs = new Tensor?[node.Outputs.Length];
            long started = NodeTimer is null ? 0 : System.Diagnostics.Stopwatch.GetTimestamp();
            node.Operator.Run(new Operators.OperatorCall(nodeInputs, nodeOutputs, new Operators.RunContext(node.Label, _options.Threads)));
            NodeTimer?.Invoke(node.Label, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            for (int i = 0; i < nodeOutputs.Length; i++)
            {
                if (node.Outputs[i] >= 0) values[node.Outputs[i]] = nodeOutputs[i];
                else nodeOutputs[i]?.Buffer.Release();
            }
            foreach (int slot in node.ReleaseAfter)
            {
                if (values[slot] is { } dead && _plan.Constants[slot] is null)
                {
                    if (!IsCallerInput(slot)) dead.Buffer.Release();
                    values[slot] = null;
                }
            }
        }

        var wanted = outputNames?.ToHashSet(StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (info, slot) in _plan.Outputs)
        {
            if (wanted is not null && !wanted.Contains(info.Name)) continue;
            var value = values[slot] ?? throw new InvalidOperationException($"{_plan.Source}: output '{info.Name}' was not computed.");
            result[info.Name] = Own(value);
        }
        if (wanted is not null)
        {
            foreach (var name in wanted)
            {
                if (!result.ContainsKey(name)) throw new ArgumentException($"{_plan.Source}: the model has no output '{name}'.", nameof(outputNames));
            }
        }
        return result;
    }

    private bool IsCallerInput(int slot) => _plan.Inputs.Any(i => i.Slot == slot);

    /// <summary>An output the caller may keep and change: pooled arrays are handed over; shared ones (constants, inputs) are copied.</summary>
    private static Tensor Own(Tensor value)
    {
        if (value.Buffer.Pooled)
        {
            value.Buffer.Detach();
            return value;
        }
        var copy = Array.CreateInstance(value.Buffer.Data.GetType().GetElementType()!, value.Length);
        Array.Copy(value.Buffer.Data, copy, value.Length);
        return new Tensor(value.ElementType, value.ShapeArray, new TensorBuffer(copy, pooled: false));
    }

    private void CheckInput(ValueInfo info, Tensor tensor)
    {
        if (info.ElementType != TensorElementType.Undefined && tensor.ElementType != info.ElementType)
            throw new ArgumentException($"{_plan.Source}: input '{info.Name}' must be {info.ElementType.DisplayName()}, not {tensor.ElementType.DisplayName()}.");
        if (info.Shape is { } shape)
        {
            bool fits = shape.Count == tensor.Rank;
            for (int d = 0; fits && d < shape.Count; d++)
                fits = shape[d].Value is not { } size || size <= 0 || size == tensor.Shape[d];
            if (!fits)
                throw new ArgumentException($"{_plan.Source}: input '{info.Name}' must have shape [{string.Join(", ", shape)}], not {Tensor.Format(tensor.Shape)}.");
        }
    }

    /// <inheritdoc />
    public void Dispose() => _disposed = true;
}
