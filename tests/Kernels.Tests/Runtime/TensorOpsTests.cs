using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Kernels.Runtime.Operators;
using static Quantize.Kernels.Tests.Runtime.TensorOpOracle;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// The data-movement ops against ONNX Runtime, on the element types and parameter corners the ONNX node
/// tests leave out: bool and string elements, random slices, transposes big enough to be tiled, every pad mode.
/// </summary>
public class TensorOpsTests
{
    public static TheoryData<TensorElementType> MovedTypes() => new(
        TensorElementType.Float32, TensorElementType.Float16, TensorElementType.Float64, TensorElementType.Int8,
        TensorElementType.UInt8, TensorElementType.Int16, TensorElementType.Int64, TensorElementType.Bool, TensorElementType.String);

    [Theory]
    [MemberData(nameof(MovedTypes))]
    public void Gather_picks_along_any_axis_with_negative_indices(TensorElementType type)
    {
        var random = new Random(1);
        var data = Random(type, random, 3, 4, 5);
        // ORT 1.31 gathers strings along a non-last axis wrongly (only the first of each slice is set); see the positions test.
        if (type != TensorElementType.String)
        {
            Check("Gather", 13, [data, Longs(-1, 0, 2, -4)], [type], n => n.Attribute.Add(Int("axis", 1)));
            Check("Gather", 13, [data, Scalar(1L)], [type]);
        }
        Check("Gather", 13, [data, Tensor.Create(new[] { 2, 0, -3, 1 }, 2, 2)], [type], n => n.Attribute.Add(Int("axis", -1)));
    }

    [Fact]
    public void Gather_of_strings_moves_what_gather_of_positions_moves()
    {
        var strings = Random(TensorElementType.String, new Random(9), 3, 4, 5);
        var positions = Tensor.Create(Enumerable.Range(0, 60).Select(i => (long)i).ToArray(), 3, 4, 5);
        var indices = Longs(-1, 0, 2, -4);
        Check("Gather", 13, [positions, indices], [TensorElementType.Int64], n => n.Attribute.Add(Int("axis", 1)));
        void Axis(NodeProto n) => n.Attribute.Add(Int("axis", 1));
        var result = Ours("Gather", 13, [strings, indices], [TensorElementType.String], Axis)[0].AsSpan<string>();
        var from = Ours("Gather", 13, [positions, indices], [TensorElementType.Int64], Axis)[0].AsSpan<long>();
        var source = strings.AsSpan<string>();
        Assert.Equal(from.Length, result.Length);
        for (int i = 0; i < result.Length; i++) Assert.Equal(source[(int)from[i]], result[i]);
    }

    [Theory]
    [MemberData(nameof(MovedTypes))]
    public void Concat_and_split_along_any_axis(TensorElementType type)
    {
        var random = new Random(2);
        Check("Concat", 13, [Random(type, random, 2, 3, 4), Random(type, random, 2, 0, 4), Random(type, random, 2, 5, 4)], [type], n => n.Attribute.Add(Int("axis", -2)));
        var x = Random(type, random, 3, 7);
        Check("Split", 18, [x], [type, type, type, type], n => n.Attribute.AddRange([Int("axis", 1), Int("num_outputs", 4)]));
        Check("Split", 13, [x, Longs(2, 0, 5)], [type, type, type], n => n.Attribute.Add(Int("axis", -1)));
        Check("Split", 11, [x], [type, type], n => n.Attribute.AddRange([Int("axis", 1), Ints("split", 3, 4)]));
    }

    [Theory]
    [MemberData(nameof(MovedTypes))]
    public void Views_reshape_flatten_squeeze_unsqueeze(TensorElementType type)
    {
        var random = new Random(3);
        var x = Random(type, random, 2, 1, 3, 4);
        Check("Reshape", 14, [x, Longs(0, -1, 2)], [type]);
        Check("Reshape", 14, [Random(type, random, 0, 3), Longs(3, 0)], [type], n => n.Attribute.Add(Int("allowzero", 1)));
        Check("Flatten", 13, [x], [type], n => n.Attribute.Add(Int("axis", -3)));
        Check("Squeeze", 13, [x, Longs(-3)], [type]);
        Check("Squeeze", 11, [x], [type]);
        Check("Unsqueeze", 13, [x, Longs(-1, 0)], [type]);
        Check("Unsqueeze", 11, [x], [type], n => n.Attribute.Add(Ints("axes", 2, 5)));
        Check("Transpose", 13, [x], [type], n => n.Attribute.Add(Ints("perm", 1, 0, 2, 3))); // only a size-1 axis moves: a view
    }

    [Theory]
    [MemberData(nameof(MovedTypes))]
    public void Expand_and_tile_repeat(TensorElementType type)
    {
        var random = new Random(4);
        Check("Expand", 13, [Random(type, random, 3, 1), Longs(2, 1, 4)], [type]);
        Check("Expand", 13, [Random(type, random, 3, 1), Longs(1)], [type]);
        if (type != TensorElementType.String) // ORT's Tile has no string kernel
            Check("Tile", 13, [Random(type, random, 2, 3), Longs(3, 2)], [type]);
    }

    [Fact]
    public void Slice_matches_ort_on_random_windows()
    {
        var random = new Random(5);
        var x = Random(TensorElementType.Int32, random, 4, 5, 6);
        for (int trial = 0; trial < 40; trial++)
        {
            int count = random.Next(1, 4);
            var axes = Enumerable.Range(0, 3).OrderBy(_ => random.Next()).Take(count).Select(a => (long)(random.Next(2) == 0 ? a : a - 3)).ToArray();
            long Pick() => random.Next(6) switch { 0 => long.MaxValue, 1 => long.MinValue, _ => random.Next(-8, 9) };
            var starts = axes.Select(_ => Pick()).ToArray();
            var ends = axes.Select(_ => Pick()).ToArray();
            var steps = axes.Select(_ => (long)(random.Next(2) == 0 ? random.Next(1, 4) : -random.Next(1, 4))).ToArray();
            // ORT reads an end of INT64_MAX with a negative step as "to the front"; ONNX clamps it to dim - 1 (nothing taken).
            for (int i = 0; i < ends.Length; i++)
            {
                if (steps[i] < 0 && ends[i] == long.MaxValue) ends[i] = long.MinValue;
            }
            Check("Slice", 13, [x, Longs(starts), Longs(ends), Longs(axes), Longs(steps)], [TensorElementType.Int32]);
        }
        Check("Slice", 13, [Random(TensorElementType.String, random, 3, 4), Longs(-1, 1), Longs(-4, 100)], [TensorElementType.String]);
        Check("Slice", 9, [x], [TensorElementType.Int32], n => n.Attribute.AddRange([Ints("starts", 1, -2), Ints("ends", 100, -1), Ints("axes", 0, 2)]));
    }

    [Theory]
    [InlineData(TensorElementType.Float32)]
    [InlineData(TensorElementType.UInt8)]
    [InlineData(TensorElementType.Float64)]
    [InlineData(TensorElementType.String)]
    public void Transpose_matches_ort_on_tiled_and_plain_shapes(TensorElementType type)
    {
        var random = new Random(6);
        Check("Transpose", 13, [Random(type, random, 2, 3, 17, 33)], [type], n => n.Attribute.Add(Ints("perm", 0, 2, 3, 1)));
        Check("Transpose", 13, [Random(type, random, 2, 3, 17, 33)], [type], n => n.Attribute.Add(Ints("perm", 3, 1, 0, 2)));
        Check("Transpose", 13, [Random(type, random, 40, 20)], [type]);
        Check("Transpose", 13, [Random(type, random, 3, 5, 7)], [type]);
    }

    [Theory]
    [InlineData("constant")]
    [InlineData("reflect")]
    [InlineData("edge")]
    [InlineData("wrap")]
    public void Pad_matches_ort_in_every_mode(string mode)
    {
        var random = new Random(7);
        foreach (var type in new[] { TensorElementType.Float32, TensorElementType.Int64, TensorElementType.UInt8, TensorElementType.Bool })
        {
            var x = Random(type, random, 3, 4, 5);
            void Mode(NodeProto n) => n.Attribute.Add(Str("mode", mode));
            Check("Pad", 19, [x, Longs(1, 0, 2, 2, 3, 1)], [type], Mode);
            Check("Pad", 19, [x, Longs(2, 2, 1, 2), Reshaped(Random(type, random, 1)), Longs(-1, 0)], [type], Mode);
            if (mode == "constant")
                Check("Pad", 19, [x, Longs(-1, 2, -2, 0, 1, -1)], [type], Mode);
        }
        if (mode != "wrap")
            Check("Pad", 10, [Random(TensorElementType.Float32, random, 2, 3)], [TensorElementType.Float32],
                n => n.Attribute.AddRange([Str("mode", mode), Ints("pads", 1, 2, 1, 2), Float("value", 1.5f)]));
    }

    [Fact]
    public void Shape_size_range_and_constant_of_shape_match_ort()
    {
        var random = new Random(8);
        var x = Random(TensorElementType.Bool, random, 2, 3, 4, 5);
        Check("Shape", 15, [x], [TensorElementType.Int64], n => n.Attribute.AddRange([Int("start", -3), Int("end", 100)]));
        Check("Shape", 13, [x], [TensorElementType.Int64]);
        Check("Size", 13, [x], [TensorElementType.Int64]);
        Check("Range", 11, [Scalar(10L), Scalar(-7L), Scalar(-3L)], [TensorElementType.Int64]);
        Check("Range", 11, [Scalar(1.5), Scalar(4.0), Scalar(0.25)], [TensorElementType.Float64]);
        Check("Range", 11, [Scalar(0.1f), Scalar(-2f), Scalar(-0.3f)], [TensorElementType.Float32], rtol: 1e-6);
        Check("Range", 11, [Scalar(3), Scalar(3), Scalar(1)], [TensorElementType.Int32]);
        var value = new TensorProto { DataType = (int)TensorProto.Types.DataType.Int64, RawData = Google.Protobuf.ByteString.CopyFrom(BitConverter.GetBytes(-7L)) };
        value.Dims.Add(1);
        Check("ConstantOfShape", 9, [Longs(2, 3)], [TensorElementType.Int64],
            n => n.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = value }));
        Check("ConstantOfShape", 9, [Longs()], [TensorElementType.Float32]);
    }

    [Fact]
    public void Identity_like_cases_match_ort()
    {
        var random = new Random(10);
        var x = Random(TensorElementType.Float32, random, 2, 3);
        var f = TensorElementType.Float32;
        Check("Slice", 13, [x, Longs(0, -100), Longs(long.MaxValue, 3)], [f]);
        Check("Tile", 13, [x, Longs(1, 1)], [f]);
        Check("Pad", 19, [x, Longs(0, 0, 0, 0)], [f]);
        Check("Concat", 13, [x], [f], n => n.Attribute.Add(Int("axis", 0)));
        Check("Split", 13, [x], [f], n => n.Attribute.Add(Int("axis", 1)));
        Check("Expand", 13, [x, Longs(1, 3)], [f]);
    }

    [Fact]
    public void Views_share_the_input_elements()
    {
        var x = Tensor.Create(new[] { 1f, 2, 3, 4, 5, 6 }, 2, 3);
        var outputs = new Tensor?[1];
        new Reshape([3, 2], allowZero: false).Run(new OperatorCall([x], outputs, new RunContext("r", 1)));
        Assert.Same(x.Buffer, outputs[0]!.Buffer);
        Assert.Equal([3, 2], outputs[0]!.ShapeArray);
    }
}
