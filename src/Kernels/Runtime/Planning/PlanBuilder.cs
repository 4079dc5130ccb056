using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Turns an ONNX model into an <see cref="ExecutionPlan"/>: graph rewrites (fusions), topological order,
/// one operator per node (failing at load for anything unsupported), constant folding, and last-use analysis.
/// </summary>
internal static class PlanBuilder
{
    /// <summary>The domain of the fused operators that graph rewrites create.</summary>
    public const string FusedDomain = "quantize.kernels";

    /// <summary>Ops whose result is not a function of their inputs: never folded.</summary>
    private static readonly HashSet<string> Nondeterministic = ["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"];

    public static ExecutionPlan Build(OnnxModel model, SessionOptions options)
    {
        var graph = model.Graph;
        string source = model.Source;
        var opsets = new Dictionary<string, int>();
        foreach (var import in model.Proto.OpsetImport)
            opsets[OperatorRegistry.Normalize(import.Domain)] = (int)import.Version;
        if (model.Proto.OpsetImport.Count == 0) opsets[""] = 1; // IR 2 models predate opset imports
        opsets[FusedDomain] = 1; // the planner's own fused ops

        // Constants: initializers, then whatever Constant nodes and folding add.
        var constants = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var initializer in graph.Initializer)
            constants[initializer.Name] = TensorPool.FromStored(model.ReadTensor(initializer));
        if (graph.SparseInitializer.Count > 0)
            throw new UnsupportedModelException(source, "sparse initializers are not supported by the runtime.");

        var nodes = GraphRewrites.Apply(model, options, Order(graph, source), constants);
        var graphInputs = graph.Input.Where(i => !constants.ContainsKey(i.Name)).ToList();

        var planned = new List<(Operator Op, NodeProto Node, string Label, HashSet<int> Taken)>();
        foreach (var node in nodes)
        {
            string domain = OperatorRegistry.Normalize(node.Domain);
            string label = $"'{(node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault() ?? "")}' ({node.OpType})";
            if (!opsets.TryGetValue(domain, out int opset))
                throw new UnsupportedModelException(source, $"node {label} uses domain '{node.Domain}', which the model does not import.");
            var factory = OperatorRegistry.Find(domain, node.OpType, opset)
                ?? throw new UnsupportedModelException(source,
                    $"node {label} uses {(domain.Length > 0 ? domain + "." : "")}{node.OpType} (opset {opset}), which Quantize.Kernels does not implement.");
            var build = new OperatorBuildContext(node, opset, options, source, name => constants.GetValueOrDefault(name), model);
            var op = factory(build);

            bool foldable = options.FoldConstants && !Nondeterministic.Contains(node.OpType) && node.Output.Count > 0
                && node.Input.All(i => i.Length == 0 || constants.ContainsKey(i));
            if (foldable)
            {
                var foldedInputs = node.Input.Select(i => i.Length == 0 ? null : constants[i]).ToArray();
                var folded = new Tensor?[node.Output.Count];
                op.Run(new OperatorCall(foldedInputs, folded, new RunContext(label, options.Threads)));
                for (int i = 0; i < folded.Length; i++)
                {
                    if (node.Output[i].Length > 0 && folded[i] is { } value) constants[node.Output[i]] = Detached(value);
                }
                continue;
            }
            planned.Add((op, node, label, build.TakenInputs));
        }

        // Slots: every value name, constants first.
        var slots = new Dictionary<string, int>(StringComparer.Ordinal);
        int Slot(string name) => slots.TryGetValue(name, out int s) ? s : slots[name] = slots.Count;
        foreach (var name in constants.Keys) Slot(name);
        foreach (var input in graphInputs) Slot(input.Name);
        foreach (var (_, node, _, _) in planned)
        {
            foreach (var name in node.Input.Concat(node.Output))
            {
                if (name.Length > 0) Slot(name);
            }
        }
        foreach (var output in graph.Output)
        {
            if (!slots.ContainsKey(output.Name))
                throw new InvalidModelException(source, $"graph output '{output.Name}' is not produced by any node, input or initializer.");
        }

        // Last use of every slot; graph outputs are never released.
        var lastUse = new int[slots.Count];
        Array.Fill(lastUse, -1);
        for (int n = 0; n < planned.Count; n++)
        {
            foreach (var name in planned[n].Node.Input)
            {
                if (name.Length > 0) lastUse[slots[name]] = n;
            }
            foreach (var name in planned[n].Node.Output)
            {
                if (name.Length > 0 && lastUse[slots[name]] < n) lastUse[slots[name]] = n; // unread outputs die at once
            }
        }
        foreach (var output in graph.Output) lastUse[slots[output.Name]] = int.MaxValue;
        var releases = new List<int>[planned.Count];
        for (int n = 0; n < planned.Count; n++) releases[n] = [];
        for (int s = 0; s < lastUse.Length; s++)
        {
            if (lastUse[s] >= 0 && lastUse[s] < planned.Count) releases[lastUse[s]].Add(s);
        }

        // Constants every reader took in its own form (packed weights) are not kept twice.
        var stillRead = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (_, node, _, taken) in planned)
        {
            for (int i = 0; i < node.Input.Count; i++)
            {
                if (node.Input[i].Length > 0 && !taken.Contains(i)) stillRead.Add(node.Input[i]);
            }
        }
        foreach (var output in graph.Output) stillRead.Add(output.Name);
        foreach (var name in constants.Keys.Where(n => !stillRead.Contains(n)).ToList()) constants.Remove(name);

        var slotNames = new string[slots.Count];
        foreach (var (name, s) in slots) slotNames[s] = name;
        var constantSlots = new Tensor?[slots.Count];
        foreach (var (name, value) in constants)
            constantSlots[slots[name]] = value;

        var plannedNodes = planned.Select((p, n) => new PlannedNode(
            p.Op,
            p.Node.Input.Select((i, index) => i.Length == 0 || p.Taken.Contains(index) ? -1 : slots[i]).ToArray(),
            p.Node.Output.Select(o => o.Length == 0 ? -1 : slots[o]).ToArray(),
            p.Label,
            releases[n].ToArray())).ToArray();

        var inputs = graphInputs.Select(i => (Describe(i, source), slots[i.Name])).ToArray();
        var outputs = graph.Output.Select(o => (Describe(o, source), slots[o.Name])).ToArray();
        return new ExecutionPlan(source, slotNames, constantSlots, plannedNodes, inputs, outputs);
    }

    /// <summary>A folded value kept for the model's lifetime: in an array of its own size, never pooled.</summary>
    private static Tensor Detached(Tensor value)
    {
        if (!value.Buffer.Pooled) return value;
        var exact = Array.CreateInstance(value.Buffer.Data.GetType().GetElementType()!, value.Length);
        Array.Copy(value.Buffer.Data, exact, value.Length);
        value.Buffer.Release();
        return new Tensor(value.ElementType, value.ShapeArray, new TensorBuffer(exact, pooled: false));
    }

    /// <summary>The nodes in an order where every value is produced before it is read (Kahn's algorithm, stable).</summary>
    internal static List<NodeProto> Order(GraphProto graph, string source)
    {
        var produced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in graph.Input) produced.Add(i.Name);
        foreach (var t in graph.Initializer) produced.Add(t.Name);
        var pending = graph.Node.ToList();
        var ordered = new List<NodeProto>(pending.Count);
        while (pending.Count > 0)
        {
            int before = ordered.Count;
            for (int i = 0; i < pending.Count; i++)
            {
                var node = pending[i];
                if (node.Input.All(x => x.Length == 0 || produced.Contains(x)))
                {
                    ordered.Add(node);
                    foreach (var o in node.Output) produced.Add(o);
                    pending.RemoveAt(i--);
                }
            }
            if (ordered.Count == before)
                throw new InvalidModelException(source, $"the graph has a cycle through node '{pending[0].Name}' ({pending[0].OpType}).");
        }
        return ordered;
    }

    private static ValueInfo Describe(ValueInfoProto value, string source)
    {
        var type = value.Type;
        if (type is null) return new ValueInfo(value.Name, TensorElementType.Undefined, null);
        if (type.ValueCase != TypeProto.ValueOneofCase.TensorType)
            throw new UnsupportedModelException(source, $"'{value.Name}' is a {type.ValueCase} value; the runtime supports tensors only.");
        var tensor = type.TensorType;
        IReadOnlyList<Dimension>? shape = tensor.Shape is null ? null
            : tensor.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue
                ? new Dimension(d.DimValue, null)
                : new Dimension(null, d.DimParam.Length > 0 ? d.DimParam : null)).ToArray();
        return new ValueInfo(value.Name, OnnxElementTypes.ToElementType(tensor.ElemType), shape);
    }
}
