using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Tests.Support;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Models;

/// <summary>
/// ONNX external data: saving moves large initializers to a data file that ONNX Runtime reads
/// back to the same results, loading it back gives the same tensors, and data outside the
/// model's folder or malformed references are refused with errors that name the file.
/// </summary>
public class OnnxExternalDataTests
{
    /// <summary>A PyTorch-exported Conv3d: a 1,296-byte weight (external by ONNX's 1,024-byte default) and a 24-byte bias.</summary>
    private const string Case = "onnx-node-tests-extra/pytorch-converted/test_Conv3d_groups";

    private static string CaseFolder => SharedData.Require(Case);

    private static string ModelPath => Path.Combine(CaseFolder, "model.onnx");

    [Fact]
    public void Saving_with_external_data_moves_large_initializers_out_and_runs_bitwise_equal_in_onnx_runtime()
    {
        using var temp = new TempFolder();
        var sourceHashes = TempFolder.Hashes(CaseFolder);
        var original = OnnxModel.Load(ModelPath);
        string saved = temp["model.onnx"];

        original.Save(saved, new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });

        Assert.Equal(["model.onnx", "model.onnx.data"], temp.Files());
        var reloaded = OnnxModel.Load(saved);
        var infos = reloaded.DescribeStoredTensors().ToList();
        Assert.All(infos, info => Assert.Equal(info.ByteCount >= 1024, info.IsExternal));
        Assert.Contains(infos, info => info.IsExternal);
        Assert.Contains(infos, info => !info.IsExternal);

        // Every tensor reads back to the original's bytes.
        var originalTensors = TensorSlot.Enumerate(original.Proto).Select(s => original.ReadTensor(s.Tensor)).ToList();
        var reloadedTensors = TensorSlot.Enumerate(reloaded.Proto).Select(s => reloaded.ReadTensor(s.Tensor)).ToList();
        Assert.Equal(originalTensors.Count, reloadedTensors.Count);
        Assert.All(originalTensors.Zip(reloadedTensors), p => Assert.True(TensorComparison.BitwiseEqual(p.First, p.Second)));

        // ORT reads the data file itself, from the saved model's path.
        var input = InputOf(original);
        using (var before = OrtOracle.Session(File.ReadAllBytes(ModelPath)))
        using (var after = OrtOracle.Session(saved))
        {
            var expected = OrtOracle.Run(before, [input], ["3"]);
            var actual = OrtOracle.Run(after, [input], ["3"]);
            Assert.True(TensorComparison.BitwiseEqual(expected[0], actual[0]), "ORT's output on the saved model differs");
        }

        // Brought back inline, the model serializes exactly as the original did.
        byte[] originalBytes = original.ToByteArray();
        Assert.Equal(File.ReadAllBytes(ModelPath), originalBytes);
        Assert.Equal(originalBytes, reloaded.ToByteArray());
        reloaded.Save(temp["inline.onnx"], new OnnxSaveOptions { ExternalData = ExternalDataMode.Never });
        Assert.Equal(originalBytes, File.ReadAllBytes(temp["inline.onnx"]));

        Assert.Equal(sourceHashes, TempFolder.Hashes(CaseFolder));
        Assert.Equal(["inline.onnx", "model.onnx", "model.onnx.data"], temp.Files());
    }

    [Fact]
    public void Re_saving_a_model_that_has_external_data_never_modifies_its_files()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp["source"]);
        OnnxModel.Load(ModelPath).Save(temp["source/model.onnx"], new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        var sourceHashes = TempFolder.Hashes(temp["source"]);
        var model = OnnxModel.Load(temp["source/model.onnx"]);

        model.Save(temp["copy/model.onnx"], new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });
        model.Save(temp["inline/model.onnx"], new OnnxSaveOptions { ExternalData = ExternalDataMode.Never });
        // Saving over itself would overwrite the data it reads from: refused before anything is written.
        Assert.Throws<IOException>(() => model.Save(temp["source/model.onnx"], new OnnxSaveOptions { ExternalData = ExternalDataMode.Always }));

        Assert.Equal(sourceHashes, TempFolder.Hashes(temp["source"]));
        Assert.Equal(File.ReadAllBytes(temp["source/model.onnx.data"]), File.ReadAllBytes(temp["copy/model.onnx.data"]));
        Assert.Equal(File.ReadAllBytes(ModelPath), File.ReadAllBytes(temp["inline/model.onnx"]));
        Assert.Equal(["copy/model.onnx", "copy/model.onnx.data", "inline/model.onnx", "source/model.onnx", "source/model.onnx.data"], temp.Files());
    }

    [Fact]
    public void Auto_mode_goes_external_only_past_the_inline_limit()
    {
        using var temp = new TempFolder();
        var model = OnnxModel.Load(ModelPath);

        model.Save(temp["small/model.onnx"]);
        model.Save(temp["large/model.onnx"], new OnnxSaveOptions { InlineLimit = 1000 });

        Assert.Equal(File.ReadAllBytes(ModelPath), File.ReadAllBytes(temp["small/model.onnx"]));
        Assert.True(File.Exists(temp["large/model.onnx.data"]));
        Assert.Contains(OnnxModel.Load(temp["large/model.onnx"]).DescribeStoredTensors(), info => info.IsExternal);
    }

    public static TheoryData<string, string> EscapingLocations() => new()
    {
        { "parent", "../outside.bin" },
        { "absolute", "{temp}/outside.bin" },
        { "link to a file outside", "link.bin" },
        { "link to a folder outside", "linked-folder/outside.bin" },
    };

    [Theory]
    [MemberData(nameof(EscapingLocations))]
    public void Data_outside_the_model_folder_is_refused_and_never_read(string kind, string location)
    {
        using var temp = new TempFolder();
        var (model, weightBytes) = WithExternalWeight(location.Replace("{temp}", temp.Path), "0");
        // The sentinel would be valid data: only the containment rule can refuse it.
        File.WriteAllBytes(temp["outside.bin"], Enumerable.Repeat((byte)0x5A, weightBytes).ToArray());
        Directory.CreateDirectory(temp["model"]);
        File.CreateSymbolicLink(temp["model/link.bin"], temp["outside.bin"]);
        Directory.CreateSymbolicLink(temp["model/linked-folder"], temp.Path);
        string path = temp["model/model.onnx"];
        File.WriteAllBytes(path, WriteModel(model));

        var error = Assert.Throws<InvalidModelException>(() => Model.Load(path));
        Assert.Equal(path, error.Source);
        Assert.Contains(location.Replace("{temp}", temp.Path), error.Message);
        Assert.Contains("must be a file inside the model's folder", error.Message);

        // Without validation the refusal comes when the data is wanted.
        var unvalidated = OnnxModel.Load(path, new ModelLoadOptions { Validate = false });
        Assert.Throws<InvalidModelException>(() => unvalidated.ReadTensor(unvalidated.Graph.Initializer[0]));
        Assert.Throws<InvalidModelException>(() => unvalidated.ToByteArray());
        Assert.Throws<InvalidModelException>(() => unvalidated.Save(temp["copy/model.onnx"], new OnnxSaveOptions { ExternalData = ExternalDataMode.Always }));
        Assert.False(Directory.Exists(temp["copy"]));
        TestContext.Current.TestOutputHelper?.WriteLine($"{kind}: {error.Message}");
    }

    [Fact]
    public void A_link_that_stays_inside_the_model_folder_is_followed()
    {
        using var temp = new TempFolder();
        var (model, _) = WithExternalWeight("link.bin", "0");
        Directory.CreateDirectory(temp["model/data"]);
        File.WriteAllBytes(temp["model/data/weights.bin"], OriginalWeight());
        File.CreateSymbolicLink(temp["model/link.bin"], "data/weights.bin");
        File.WriteAllBytes(temp["model/model.onnx"], WriteModel(model));

        var loaded = OnnxModel.Load(temp["model/model.onnx"]);

        Assert.Equal(OriginalWeight(), loaded.ReadTensor(loaded.Graph.Initializer[0]).Bytes.ToArray());
    }

    [Fact]
    public void A_save_that_fails_midway_leaves_no_temporary_file_and_no_output()
    {
        using var temp = new TempFolder();
        // The weight stays inline and goes to the new data file first; the bias is external, in a
        // file another process holds exclusively, so reading it fails after writing has begun.
        var proto = OnnxModel.Load(ModelPath).Proto.Clone();
        var bias = proto.Graph.Initializer[1];
        Directory.CreateDirectory(temp["source"]);
        File.WriteAllBytes(temp["source/bias.bin"], bias.RawData.ToByteArray());
        bias.ClearRawData();
        bias.DataLocation = TensorProto.Types.DataLocation.External;
        bias.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "bias.bin" });
        File.WriteAllBytes(temp["source/model.onnx"], proto.ToByteArray());
        var model = OnnxModel.Load(temp["source/model.onnx"]);
        var sourceHashes = TempFolder.Hashes(temp["source"]);
        Directory.CreateDirectory(temp["out"]);
        File.WriteAllText(temp["out/model.onnx"], "the previous model");
        File.WriteAllText(temp["out/model.onnx.data"], "the previous data");

        using (new FileStream(temp["source/bias.bin"], FileMode.Open, FileAccess.Read, FileShare.None))
        {
            foreach (var mode in new[] { ExternalDataMode.Always, ExternalDataMode.Never })
            {
                var error = Assert.Throws<InvalidModelException>(() => model.Save(temp["out/model.onnx"], new OnnxSaveOptions { ExternalData = mode }));
                Assert.Contains("cannot read external data 'bias.bin'", error.Message);
            }
        }

        Assert.Equal(["model.onnx", "model.onnx.data"], Directory.GetFiles(temp["out"]).Select(Path.GetFileName).Order());
        Assert.Equal("the previous model", File.ReadAllText(temp["out/model.onnx"]));
        Assert.Equal("the previous data", File.ReadAllText(temp["out/model.onnx.data"]));
        Assert.Equal(sourceHashes, TempFolder.Hashes(temp["source"]));
    }

    [Theory]
    [InlineData(ExternalDataMode.Never, false)]
    [InlineData(ExternalDataMode.Never, true)]
    [InlineData(ExternalDataMode.Always, false)]
    [InlineData(ExternalDataMode.Always, true)]
    public void Saving_onto_a_folder_fails_and_leaves_the_files_as_they_were(ExternalDataMode mode, bool previousData)
    {
        using var temp = new TempFolder();
        // The model's rename fails after the data file's has succeeded: the data file is put back.
        Directory.CreateDirectory(temp["out/model.onnx"]);
        if (previousData) File.WriteAllText(temp["out/model.onnx.data"], "the previous data");
        var model = OnnxModel.Load(ModelPath);

        var error = Assert.ThrowsAny<IOException>(() => model.Save(temp["out/model.onnx"], new OnnxSaveOptions { ExternalData = mode }));

        TestContext.Current.TestOutputHelper?.WriteLine(error.Message);
        Assert.Equal(previousData ? ["out/model.onnx.data"] : [], temp.Files());
        if (previousData) Assert.Equal("the previous data", File.ReadAllText(temp["out/model.onnx.data"]));
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp["out/model.onnx"]));
    }

    [Fact]
    public void A_missing_data_file_is_an_error_naming_it()
    {
        var error = LoadWithExternalWeight("weights.bin", "0", dataBytes: null);
        Assert.Contains("weights.bin", error.Message);
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void A_data_file_too_short_for_the_tensor_is_an_error()
    {
        var error = LoadWithExternalWeight("weights.bin", "0", dataBytes: 1295);
        Assert.Contains("weights.bin", error.Message);
        Assert.Contains("too short", error.Message);
    }

    [Fact]
    public void An_offset_past_the_data_is_an_error()
    {
        var error = LoadWithExternalWeight("weights.bin", "4096", dataBytes: 1296);
        Assert.Contains("too short", error.Message);
    }

    [Theory]
    [InlineData("12abc")]
    [InlineData("-1")]
    [InlineData("")]
    [InlineData("99999999999999999999999")]
    public void A_non_numeric_offset_is_an_error(string offset)
    {
        var error = LoadWithExternalWeight("weights.bin", offset, dataBytes: 1296);
        Assert.Contains($"offset '{offset}'", error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData(".")]
    [InlineData("folder")]
    [InlineData("model.onnx/weights.bin")]
    [InlineData("weights\0.bin")]
    public void A_location_that_is_not_a_file_in_the_folder_is_an_error(string location)
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp["folder"]);
        var (model, _) = WithExternalWeight(location, "0");
        string path = temp["model.onnx"];
        File.WriteAllBytes(path, WriteModel(model));

        var error = Assert.Throws<InvalidModelException>(() => Model.Load(path));
        Assert.Equal(path, error.Source);
        Assert.Contains("tensor '1'", error.Message);
    }

    [Fact]
    public void A_stated_length_that_does_not_match_the_shape_is_an_error()
    {
        using var temp = new TempFolder();
        var (model, weightBytes) = WithExternalWeight("weights.bin", "0");
        model.Graph.Initializer[0].ExternalData.Single(e => e.Key == "length").Value = "1000";
        File.WriteAllBytes(temp["weights.bin"], OriginalWeight());
        File.WriteAllBytes(temp["model.onnx"], WriteModel(model));

        var error = Assert.Throws<InvalidModelException>(() => Model.Load(temp["model.onnx"]));

        Assert.Contains($"declares 1000 bytes of external data in 'weights.bin', but its shape and type need {weightBytes}", error.Message);
    }

    [Fact]
    public void A_link_loop_is_an_error()
    {
        using var temp = new TempFolder();
        var (model, _) = WithExternalWeight("a.bin", "0");
        File.CreateSymbolicLink(temp["a.bin"], "b.bin");
        File.CreateSymbolicLink(temp["b.bin"], "a.bin");
        File.WriteAllBytes(temp["model.onnx"], WriteModel(model));

        var error = Assert.Throws<InvalidModelException>(() => Model.Load(temp["model.onnx"]));

        Assert.Contains("'a.bin', which is a link that cannot be followed", error.Message);
    }

    [Fact]
    public void A_location_name_longer_than_the_file_system_allows_is_an_error()
    {
        var error = LoadWithExternalWeight(new string('w', 300) + ".bin", "0", dataBytes: null);
        Assert.Contains("www", error.Message);
    }

    [Fact]
    public void External_data_loaded_from_bytes_needs_a_base_directory()
    {
        using var temp = new TempFolder();
        var (model, _) = WithExternalWeight("weights.bin", "0");
        File.WriteAllBytes(temp["weights.bin"], OriginalWeight());
        byte[] bytes = WriteModel(model);

        var error = Assert.Throws<InvalidModelException>(() => Model.Load(bytes, "embedded.onnx"));
        Assert.Equal("embedded.onnx", error.Source);
        Assert.Contains("BaseDirectory", error.Message);

        var loaded = OnnxModel.Load(bytes, "embedded.onnx", new ModelLoadOptions { BaseDirectory = temp.Path });
        Assert.Equal(OriginalWeight(), loaded.ReadTensor(loaded.Graph.Initializer[0]).Bytes.ToArray());
    }

    /// <summary>The case's model with its weight moved to external data at <paramref name="location"/> (the bias stays inline).</summary>
    private static (OnnxModel Model, int WeightBytes) WithExternalWeight(string location, string offset)
    {
        var proto = OnnxModel.Load(ModelPath).Proto.Clone();
        var weight = proto.Graph.Initializer[0];
        int length = weight.RawData.Length;
        weight.ClearRawData();
        weight.DataLocation = TensorProto.Types.DataLocation.External;
        weight.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        weight.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset });
        weight.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return (new OnnxModel(proto), length);
    }

    /// <summary>Writes the model (and, unless null, that many bytes of the real weight as its data file) and expects loading to fail.</summary>
    private static InvalidModelException LoadWithExternalWeight(string location, string offset, int? dataBytes)
    {
        using var temp = new TempFolder();
        var (model, _) = WithExternalWeight(location, offset);
        if (dataBytes is int count) File.WriteAllBytes(temp[location], OriginalWeight()[..count]);
        string path = temp["model.onnx"];
        File.WriteAllBytes(path, WriteModel(model));

        var error = Assert.Throws<InvalidModelException>(() => Model.Load(path));
        Assert.Equal(path, error.Source);
        Assert.Contains(path, error.Message);
        Assert.Contains("tensor '1'", error.Message);
        return error;
    }

    private static byte[] WriteModel(OnnxModel model) => model.Proto.ToByteArray();

    private static byte[] OriginalWeight() => OnnxModel.Load(ModelPath).Graph.Initializer[0].RawData.ToByteArray();

    private static (string, TensorData) InputOf(OnnxModel model)
    {
        var tensor = TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(CaseFolder, "test_data_set_0", "input_0.pb")));
        return ("0", model.ReadTensor(tensor));
    }
}
