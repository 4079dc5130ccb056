using Google.Protobuf.Collections;

namespace Quantize.Kernels.Models.Onnx;

/// <summary>
/// A place in a model that holds a <c>TensorProto</c>: an initializer, or a tensor attribute
/// (a Constant node's value, say). The writer swaps tensors in and out of these places.
/// </summary>
internal abstract class TensorSlot
{
    /// <summary>The tensor in this place.</summary>
    public abstract TensorProto Tensor { get; set; }

    /// <summary>The name reports use: the tensor's own, or the value a Constant node produces.</summary>
    public abstract string Name { get; }

    /// <summary>True for graph initializers (the tensors ONNX moves to external data by default).</summary>
    public abstract bool IsInitializer { get; }

    private sealed class ListSlot(RepeatedField<TensorProto> list, int index, string? name, bool isInitializer) : TensorSlot
    {
        public override TensorProto Tensor { get => list[index]; set => list[index] = value; }
        public override string Name => name ?? list[index].Name;
        public override bool IsInitializer => isInitializer;
    }

    private sealed class AttributeSlot(AttributeProto attribute, string name) : TensorSlot
    {
        public override TensorProto Tensor { get => attribute.T; set => attribute.T = value; }
        public override string Name => name;
        public override bool IsInitializer => false;
    }

    /// <summary>Every tensor of the model: in the main graph, in subgraphs (If/Loop/Scan bodies) and in local functions.</summary>
    public static IEnumerable<TensorSlot> Enumerate(ModelProto model)
    {
        var slots = new List<TensorSlot>();
        if (model.Graph is not null) AddGraph(model.Graph, slots);
        foreach (var function in model.Functions)
            AddNodes(function.Node, slots);
        return slots;
    }

    private static void AddGraph(GraphProto graph, List<TensorSlot> slots)
    {
        for (int i = 0; i < graph.Initializer.Count; i++)
            slots.Add(new ListSlot(graph.Initializer, i, null, isInitializer: true));
        AddNodes(graph.Node, slots);
    }

    private static void AddNodes(RepeatedField<NodeProto> nodes, List<TensorSlot> slots)
    {
        foreach (var node in nodes)
        {
            foreach (var attribute in node.Attribute)
            {
                if (attribute.T is not null)
                {
                    string name = node.OpType == "Constant" && node.Output.Count > 0 && attribute.Name == "value"
                        ? node.Output[0]
                        : $"{NodeLabel(node)}.{attribute.Name}";
                    slots.Add(new AttributeSlot(attribute, name));
                }
                for (int i = 0; i < attribute.Tensors.Count; i++)
                    slots.Add(new ListSlot(attribute.Tensors, i, $"{NodeLabel(node)}.{attribute.Name}[{i}]", isInitializer: false));
                if (attribute.G is not null) AddGraph(attribute.G, slots);
                foreach (var graph in attribute.Graphs) AddGraph(graph, slots);
            }
        }
    }

    internal static string NodeLabel(NodeProto node) =>
        node.Name.Length > 0 ? node.Name : node.Output.Count > 0 ? $"{node.OpType}->{node.Output[0]}" : node.OpType;
}
