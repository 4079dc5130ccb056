using System.Text;
using Quantize.Core.Running;
using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;
using Quantize.Tests;

namespace Quantize.Core.Tests.Running;

/// <summary>TensorFiles: .npy as numpy.save writes it, and ONNX TensorProto files, read the same as elsewhere.</summary>
public sealed class TensorFilesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("tensor-files-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>The oracle is NumPy itself: the shared images were written by numpy.save; writing what we read gives the same bytes.</summary>
    [Fact]
    public void Writing_a_numpy_written_array_back_gives_the_same_bytes()
    {
        string original = Path.Combine(SharedData.Require("calibration/images"), "astronaut.npy");
        var tensor = TensorFiles.Read(original);
        Assert.Equal(TensorElementType.UInt8, tensor.ElementType);
        string copy = Path.Combine(_folder, "copy.npy");
        TensorFiles.WriteNpy(copy, tensor);
        Assert.Equal(File.ReadAllBytes(original), File.ReadAllBytes(copy));
    }

    public static TheoryData<string> Types() => new("float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool");

    [Theory]
    [MemberData(nameof(Types))]
    public void Every_readable_type_round_trips_with_numpys_header_layout(string type)
    {
        var random = new Random(3);
        int[] shape = [2, 3, 5];
        Tensor tensor = type switch
        {
            "float32" => Tensor.Create(Enumerable.Range(0, 30).Select(_ => random.NextSingle() - 0.5f).ToArray(), shape),
            "float64" => Tensor.Create(Enumerable.Range(0, 30).Select(_ => random.NextDouble() - 0.5).ToArray(), shape),
            "float16" => Tensor.Create(Enumerable.Range(0, 30).Select(_ => (Half)(random.NextSingle() - 0.5f)).ToArray(), shape),
            "int64" => Tensor.Create(Enumerable.Range(0, 30).Select(i => (long)i * 1_000_000_007 - 5).ToArray(), shape),
            "int32" => Tensor.Create(Enumerable.Range(0, 30).Select(i => i * 70_001 - 9).ToArray(), shape),
            "int8" => Tensor.Create(Enumerable.Range(0, 30).Select(i => (sbyte)(i * 9 - 128)).ToArray(), shape),
            "uint8" => Tensor.Create(Enumerable.Range(0, 30).Select(i => (byte)(i * 8)).ToArray(), shape),
            _ => Tensor.Create(Enumerable.Range(0, 30).Select(i => i % 3 == 0).ToArray(), shape),
        };
        using var stream = new MemoryStream();
        TensorFiles.WriteNpy(stream, tensor);
        byte[] bytes = stream.ToArray();

        // numpy.lib.format: version 1.0, little-endian header length, header ending in '\n', data aligned to 64.
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
        int headerLength = bytes[8] | bytes[9] << 8;
        Assert.Equal(0, (10 + headerLength) % 64);
        string header = Encoding.Latin1.GetString(bytes, 10, headerLength);
        Assert.EndsWith("\n", header);
        Assert.Contains("'fortran_order': False, 'shape': (2, 3, 5), }", header);

        string path = Path.Combine(_folder, type + ".npy");
        File.WriteAllBytes(path, bytes);
        var back = TensorFiles.Read(path);
        Assert.Equal(tensor.ElementType, back.ElementType);
        Assert.Equal(shape, back.Shape.ToArray());
        Assert.Equal(bytes.Length - 10 - headerLength, DataLength(tensor));
        Assert.Equal(Describe(tensor), Describe(back));
    }

    [Fact]
    public void One_dimensional_and_scalar_shapes_are_written_as_python_tuples()
    {
        Assert.Contains("'shape': (4,), }", Header(Tensor.Create(new float[4], 4)));
        Assert.Contains("'shape': (), }", Header(Tensor.Create(new float[1])));
    }

    [Fact]
    public void A_TensorProto_file_reads_as_InputData_reads_it()
    {
        string sample = SharedData.Require("calibration/minilm/s000");
        var inputs = new[] { new ValueInfo("input_ids", TensorElementType.Int64, null) };
        var expected = InputData.Read(sample, inputs)["input_ids"];
        var actual = TensorFiles.Read(Path.Combine(sample, "input_ids.pb"));
        Assert.Equal(expected.Shape.ToArray(), actual.Shape.ToArray());
        Assert.Equal(expected.ToArray<long>(), actual.ToArray<long>());
    }

    [Fact]
    public void A_file_that_is_neither_names_itself()
    {
        string path = Path.Combine(_folder, "junk.bin");
        File.WriteAllBytes(path, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
        var e = Assert.Throws<InvalidDataException>(() => TensorFiles.Read(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Throws<FileNotFoundException>(() => TensorFiles.Read(Path.Combine(_folder, "missing.npy")));
    }

    [Fact]
    public void Strings_cannot_be_written()
    {
        Assert.Throws<NotSupportedException>(() => TensorFiles.WriteNpy(new MemoryStream(), Tensor.Create(new[] { "a" }, 1)));
    }

    private static string Header(Tensor tensor)
    {
        using var stream = new MemoryStream();
        TensorFiles.WriteNpy(stream, tensor);
        byte[] bytes = stream.ToArray();
        return Encoding.Latin1.GetString(bytes, 10, bytes[8] | bytes[9] << 8);
    }

    private static int DataLength(Tensor tensor) => tensor.Length * tensor.ElementType switch
    {
        TensorElementType.Float64 or TensorElementType.Int64 => 8,
        TensorElementType.Float32 or TensorElementType.Int32 => 4,
        TensorElementType.Float16 => 2,
        _ => 1,
    };

    private static string Describe(Tensor tensor) => tensor.ElementType switch
    {
        TensorElementType.Float32 => string.Join(",", tensor.ToArray<float>()),
        TensorElementType.Float64 => string.Join(",", tensor.ToArray<double>()),
        TensorElementType.Float16 => string.Join(",", tensor.ToArray<Half>()),
        TensorElementType.Int64 => string.Join(",", tensor.ToArray<long>()),
        TensorElementType.Int32 => string.Join(",", tensor.ToArray<int>()),
        TensorElementType.Int8 => string.Join(",", tensor.ToArray<sbyte>()),
        TensorElementType.UInt8 => string.Join(",", tensor.ToArray<byte>()),
        _ => string.Join(",", tensor.ToArray<bool>()),
    };
}
