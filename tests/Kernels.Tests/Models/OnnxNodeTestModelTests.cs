using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Models;

/// <summary>Every model of the ONNX backend tests loads, reads its tensors, and survives load + save + load.</summary>
public class OnnxNodeTestModelTests
{
    public static TheoryData<string> Cases() => NodeTestCases.Data();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Loads_and_round_trips_to_equal_message_and_identical_bytes(string name)
    {
        string path = Path.Combine(NodeTestCases.Folder(name), "model.onnx");
        byte[] original = File.ReadAllBytes(path);

        var model = OnnxModel.Load(path);
        foreach (var info in model.DescribeStoredTensors())
            Assert.True(info.ElementCount >= 0);

        byte[] saved = model.ToByteArray();
        var reloaded = OnnxModel.Load(saved, "saved.onnx");
        Assert.Equal(model.Proto, reloaded.Proto);

        // Field numbers, wire types and packing follow ONNX's schema, so the bytes come back identical.
        Assert.True(original.AsSpan().SequenceEqual(saved), $"{name}: saved bytes differ from the original");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_stored_tensor_decodes_to_its_declared_size(string name)
    {
        var model = OnnxModel.Load(Path.Combine(NodeTestCases.Folder(name), "model.onnx"));
        foreach (var info in model.DescribeStoredTensors()) _ = info;
        foreach (var tensor in AllTensors(model.Graph))
        {
            var data = model.ReadTensor(tensor);
            Assert.Equal(tensor.Dims, data.Shape.ToArray());
            if (data.ElementType == TensorElementType.String)
                Assert.Equal(data.ElementCount, data.Strings.Count);
            else
                Assert.Equal(data.ElementType.ByteCount(data.ElementCount), data.Bytes.Length);
        }
    }

    private static IEnumerable<TensorProto> AllTensors(GraphProto graph)
    {
        foreach (var t in graph.Initializer) yield return t;
        foreach (var node in graph.Node)
        {
            foreach (var a in node.Attribute)
            {
                if (a.T is not null) yield return a.T;
                foreach (var t in a.Tensors) yield return t;
                if (a.G is not null)
                {
                    foreach (var t in AllTensors(a.G)) yield return t;
                }
                foreach (var g in a.Graphs)
                {
                    foreach (var t in AllTensors(g)) yield return t;
                }
            }
        }
    }
}
