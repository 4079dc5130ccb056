using System.Buffers.Binary;
using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Models;

/// <summary>
/// TensorFlow frozen graphs: every real graph loads and survives a round trip, constant values
/// equal what TensorFlow itself dumped (IDX files), and short value lists are padded by
/// TensorFlow's rule.
/// </summary>
public class GraphDefModelTests
{
    public static TheoryData<string> Graphs() => new(SharedFiles("tf-graphs", "*.pb"));

    public static TheoryData<string> OpTests() => new(SharedDirectories("tf-graphs/utensor-op-tests"));

    [Theory]
    [MemberData(nameof(Graphs))]
    public void Every_graph_loads_and_round_trips_to_an_equal_message_with_identical_bytes(string relative)
    {
        string path = SharedData.Require(relative);
        byte[] original = File.ReadAllBytes(path);
        var model = Assert.IsType<GraphDefModel>(Model.Load(path));
        foreach (var info in model.DescribeStoredTensors())
            Assert.Equal(GraphDefModel.ConstValue(model.FindNode(info.Name)!)!.TensorShape?.Dim.Count ?? 0, info.Shape.Length);

        byte[] saved = model.ToByteArray();
        Assert.Equal(GraphDef.Parser.ParseFrom(original), GraphDef.Parser.ParseFrom(saved));
        // Known fields are written in field-number order and unknown ones (the function library)
        // after them, which is also the order TensorFlow writes, so the bytes come back unchanged.
        Assert.True(original.AsSpan().SequenceEqual(saved), $"{relative}: saved bytes differ from the original");
    }

    [Theory]
    [MemberData(nameof(OpTests))]
    public void Const_values_equal_the_IDX_dumps_TensorFlow_wrote(string relative)
    {
        string folder = SharedData.Require(relative);
        var graphs = Directory.GetFiles(folder, "*.pb").Order(StringComparer.Ordinal)
            .Select(p => Assert.IsType<GraphDefModel>(Model.Load(p))).ToList();
        var constFiles = Directory.GetFiles(folder, "*_0.idx");
        Assert.NotEmpty(constFiles);
        foreach (string file in constFiles)
        {
            var (type, shape, bytes) = Idx.Read(file);
            string fileName = Path.GetFileName(file);
            var matches = graphs.SelectMany(g => g.Proto.Node
                    .Where(n => GraphDefModel.ConstValue(n) is not null && n.Name.Replace('/', '_') + "_0.idx" == fileName)
                    .Select(n => (Graph: g, Node: n)))
                .ToList();
            Assert.True(matches.Count > 0, $"{fileName}: no Const in {relative} is named after it");
            foreach (var (graph, node) in matches)
            {
                var value = graph.ReadTensor(GraphDefModel.ConstValue(node)!, node.Name);
                string what = $"{Path.GetFileName(graph.Source)} Const '{node.Name}' vs {fileName}";
                Assert.True(type == value.ElementType, $"{what}: {value.ElementType.DisplayName()} vs {type.DisplayName()}");
                // IDX writes scalars with shape [1].
                long[] ours = value.Shape.Length == 0 ? [1] : value.Shape.ToArray();
                Assert.True(shape.SequenceEqual(ours), $"{what}: shape {TensorData.FormatShape(ours)} vs {TensorData.FormatShape(shape)}");
                Assert.True(bytes.AsSpan().SequenceEqual(value.Bytes), $"{what}: values differ");
            }
        }
    }

    [Fact]
    public void The_kws_batch_norm_constants_broadcast_their_single_float_val_to_64_values()
    {
        var model = GraphDefModel.Load(SharedData.Require("tf-graphs/kws_ds_cnn_s.pb"));
        var constants = model.Proto.Node.Where(n => n.Name.EndsWith("batch_norm/Const", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(constants);
        foreach (var node in constants)
        {
            var tensor = GraphDefModel.ConstValue(node)!;
            Assert.Single(tensor.FloatVal);
            var value = model.ReadTensor(tensor, node.Name);
            Assert.Equal([64L], value.Shape.ToArray());
            Assert.All(value.ToArray<float>(), v => Assert.Equal(BitConverter.SingleToInt32Bits(tensor.FloatVal[0]), BitConverter.SingleToInt32Bits(v)));
        }
    }

    [Fact]
    public void A_short_value_list_is_padded_with_its_last_value()
    {
        Assert.Equal([1f, 2f, 2f, 2f, 2f], Read(Tensor(DataType.DtFloat, [5], t => t.FloatVal.Add([1f, 2f]))).ToArray<float>());
        Assert.Equal([7, -3, -3, -3, -3, -3], Read(Tensor(DataType.DtInt32, [2, 3], t => t.IntVal.Add([7, -3]))).ToArray<int>());
        Assert.Equal([5L, 5L, 5L], Read(Tensor(DataType.DtInt64, [3], t => t.Int64Val.Add(5L))).ToArray<long>());
        Assert.Equal([true, true], Read(Tensor(DataType.DtBool, [2], t => t.BoolVal.Add(true))).ToArray<bool>());
        Assert.Equal([(sbyte)-2, (sbyte)-2], Read(Tensor(DataType.DtInt8, [2], t => t.IntVal.Add(-2))).ToArray<sbyte>());
        Assert.Equal([200, 7, 7], Read(Tensor(DataType.DtQuint8, [3], t => t.IntVal.Add([200, 7]))).Bytes.ToArray());
        Assert.Equal([(Half)1.5, (Half)1.5], Read(Tensor(DataType.DtHalf, [2], t => t.HalfVal.Add(BitConverter.HalfToInt16Bits((Half)1.5)))).ToArray<Half>());
        var strings = Read(Tensor(DataType.DtString, [3], t => t.StringVal.Add([ByteString.CopyFromUtf8("a"), ByteString.CopyFromUtf8("bc")])));
        Assert.Equal(["a", "bc", "bc"], strings.Strings.Select(s => System.Text.Encoding.UTF8.GetString(s)));
    }

    [Fact]
    public void An_empty_value_list_means_zeros()
    {
        Assert.Equal(new float[4], Read(Tensor(DataType.DtFloat, [2, 2], _ => { })).ToArray<float>());
        Assert.Equal(new long[3], Read(Tensor(DataType.DtInt64, [3], _ => { })).ToArray<long>());
        Assert.All(Read(Tensor(DataType.DtString, [2], _ => { })).Strings, s => Assert.Empty(s));
    }

    [Fact]
    public void More_values_than_the_shape_holds_is_an_error_naming_the_tensor()
    {
        var tensor = Tensor(DataType.DtFloat, [2], t => t.FloatVal.Add([1f, 2f, 3f]));
        var error = Assert.Throws<InvalidModelException>(() => Load(tensor));
        Assert.Contains("'c'", error.Message);
        Assert.Contains("3 values", error.Message);
        Assert.Contains("graph.pb", error.Message);
    }

    [Theory]
    [InlineData(DataType.DtFloat, 1L << 40)]
    [InlineData(DataType.DtFloat, 1L << 26)] // 256 MiB from one value
    [InlineData(DataType.DtInt64, long.MaxValue / 4)]
    [InlineData(DataType.DtString, 1L << 40)]
    [InlineData(DataType.DtString, 1L << 20)] // a million copies of a one-byte string: ~40 MB of arrays
    public void A_huge_shape_with_one_value_is_refused_before_allocating(DataType dtype, long elements)
    {
        var tensor = Tensor(dtype, [elements], t =>
        {
            if (dtype == DataType.DtString) t.StringVal.Add(ByteString.CopyFromUtf8("x"));
            else if (dtype == DataType.DtInt64) t.Int64Val.Add(1);
            else t.FloatVal.Add(1f);
        });
        var model = new GraphDefModel(Graph(tensor));

        long before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<InvalidModelException>(() => model.ReadTensor(tensor, "c"));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains("'c'", error.Message);
        Assert.True(allocated < 1 << 20, $"allocated {allocated:N0} bytes before refusing");
        Assert.Throws<InvalidModelException>(() => Load(tensor));
    }

    private static TensorProto Tensor(DataType dtype, long[] shape, Action<TensorProto> fill)
    {
        var tensor = new TensorProto { Dtype = dtype, TensorShape = new TensorShapeProto() };
        foreach (long d in shape) tensor.TensorShape.Dim.Add(new TensorShapeProto.Types.Dim { Size = d });
        fill(tensor);
        return tensor;
    }

    private static GraphDef Graph(TensorProto tensor) => new()
    {
        Node =
        {
            new NodeDef
            {
                Name = "c",
                Op = "Const",
                Attr = { ["value"] = new AttrValue { Tensor = tensor }, ["dtype"] = new AttrValue { Type = tensor.Dtype } },
            },
        },
    };

    /// <summary>Decodes the tensor as a graph loaded from bytes would.</summary>
    private static TensorData Read(TensorProto tensor)
    {
        var model = Load(tensor);
        return model.ReadTensor(GraphDefModel.ConstValue(model.Proto.Node[0])!, "c");
    }

    private static GraphDefModel Load(TensorProto tensor) =>
        Assert.IsType<GraphDefModel>(Model.Load(Graph(tensor).ToByteArray(), "graph.pb"));

    private static IEnumerable<string> SharedFiles(string relative, string pattern) =>
        SharedData.Exists(relative)
            ? Directory.GetFiles(Path.Combine(SharedData.Root!, relative), pattern, SearchOption.AllDirectories)
                .Select(p => Path.GetRelativePath(SharedData.Root!, p).Replace('\\', '/')).Order(StringComparer.Ordinal)
            : [relative];

    private static IEnumerable<string> SharedDirectories(string relative) =>
        SharedData.Exists(relative)
            ? Directory.GetDirectories(Path.Combine(SharedData.Root!, relative))
                .Select(p => Path.GetRelativePath(SharedData.Root!, p).Replace('\\', '/')).Order(StringComparer.Ordinal)
            : [relative];

    /// <summary>The IDX files of the utensor op tests: zero, zero, type, rank, big-endian uint32 dims, big-endian data.</summary>
    private static class Idx
    {
        public static (TensorElementType Type, long[] Shape, byte[] LittleEndian) Read(string path)
        {
            byte[] file = File.ReadAllBytes(path);
            Assert.True(file[0] == 0 && file[1] == 0, $"{path} is not an IDX file");
            var (type, size) = file[2] switch
            {
                0x0D => (TensorElementType.Float32, 4),
                0x0C => (TensorElementType.Int32, 4),
                0x08 => (TensorElementType.UInt8, 1),
                _ => throw new InvalidDataException($"{path}: IDX type 0x{file[2]:X2}"),
            };
            int rank = file[3];
            var shape = new long[rank];
            for (int i = 0; i < rank; i++) shape[i] = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(4 + 4 * i));
            byte[] data = file[(4 + 4 * rank)..];
            Assert.Equal(TensorData.CountElements(shape) * size, data.LongLength);
            for (int i = 0; i < data.Length; i += size) data.AsSpan(i, size).Reverse();
            return (type, shape, data);
        }
    }
}
