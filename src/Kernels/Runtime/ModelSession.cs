using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime.Planning;

namespace Quantize.Kernels.Runtime;

/// <summary>
/// A loaded, planned ONNX model or TensorFlow frozen graph, ready to run many times: the managed counterpart of ONNX Runtime's
/// <c>InferenceSession</c> for the models Quantize.Build produces (GraphDefs: docs/TENSORFLOW.md). A session may be run from several
/// threads at once; each run owns its intermediate values, and the outputs belong to the caller.
/// </summary>
public sealed class ModelSession : IDisposable
{
    private readonly ExecutionPlan _plan;
    private readonly SessionOptions _options;
    private readonly TensorFlow.GraphDefPlans? _graphDef;
    private bool _disposed;

    private ModelSession(ExecutionPlan plan, SessionOptions options, TensorFlow.GraphDefPlans? graphDef = null)
    {
        _plan = plan;
        _options = options;
        _graphDef = graphDef;
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

    /// <summary>
    /// Plans an already loaded model. A TensorFlow GraphDef's inputs are its placeholders and its outputs the tensors no node
    /// reads; <see cref="Run"/> may also feed or fetch any other tensor by name (<c>node</c>, <c>node:0</c> or <c>node:N</c>).
    /// </summary>
    public static ModelSession Create(Model model, SessionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new SessionOptions();
        if (model is OnnxModel onnxModel) RuntimeVersion.Check(onnxModel);
        if (model is Models.TensorFlow.GraphDefModel graphDef)
        {
            var plans = new TensorFlow.GraphDefPlans(graphDef, options);
            return new ModelSession(plans.Default, options, plans);
        }
        return new ModelSession(PlanBuilder.Build((OnnxModel)model, options), options);
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
        return _graphDef is null ? RunPlan(_plan, inputs, outputNames) : RunGraphDef(_graphDef, inputs, outputNames);
    }

    /// <summary>A GraphDef run: names made canonical (<c>x:0</c> is <c>x</c>), the plan for these feeds and fetches, results under the names asked for.</summary>
    private IReadOnlyDictionary<string, Tensor> RunGraphDef(TensorFlow.GraphDefPlans plans, IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputNames)
    {
        var feeds = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in inputs) feeds[TensorFlow.GraphDefTranslator.Canonical(name)] = tensor;
        var requested = outputNames?.ToList();
        var fetches = requested?.Select(TensorFlow.GraphDefTranslator.Canonical).Distinct().ToList();
        var results = RunPlan(plans.For(feeds.Keys, fetches), feeds, fetches);
        if (requested is null) return results;
        var named = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (string name in requested)
        {
            var value = results[TensorFlow.GraphDefTranslator.Canonical(name)];
            named[name] = named.Values.Contains(value) ? Own(new Tensor(value.ElementType, value.ShapeArray, new TensorBuffer(value.Buffer.Data, pooled: false))) : value;
        }
        return named;
    }

    private IReadOnlyDictionary<string, Tensor> RunPlan(ExecutionPlan plan, IReadOnlyDictionary<string, Tensor> inputs, IEnumerable<string>? outputNames)
    {
        var values = (Tensor?[])plan.Constants.Clone();
        foreach (var (info, slot) in plan.Inputs)
        {
            if (inputs.TryGetValue(info.Name, out var tensor))
            {
                CheckInput(info, tensor);
                values[slot] = tensor;
            }
            else if (values[slot] is null)
            {
                throw new ArgumentException($"{plan.Source}: input '{info.Name}' ({info}) is missing.", nameof(inputs));
            }
        }
        foreach (var name in inputs.Keys)
        {
            if (!plan.Inputs.Any(i => i.Info.Name == name))
                throw new ArgumentException($"{plan.Source}: the model has no input '{name}'. Its inputs: {string.Join(", ", Inputs.Select(i => i.Name))}.", nameof(inputs));
        }

        foreach (var node in plan.Nodes)
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
                if (values[slot] is { } dead && plan.Constants[slot] is null)
                {
                    if (!plan.Inputs.Any(i => i.Slot == slot)) dead.Buffer.Release();
                    values[slot] = null;
                }
            }
        }

        var wanted = outputNames?.ToHashSet(StringComparer.Ordinal);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (info, slot) in plan.Outputs)
        {
            if (wanted is not null && !wanted.Contains(info.Name)) continue;
            var value = values[slot] ?? throw new InvalidOperationException($"{plan.Source}: output '{info.Name}' was not computed.");
            result[info.Name] = Own(value);
        }
        if (wanted is not null)
        {
            foreach (var name in wanted)
            {
                if (!result.ContainsKey(name)) throw new ArgumentException($"{plan.Source}: the model has no output '{name}'.", nameof(outputNames));
            }
        }
        return result;
    }

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
